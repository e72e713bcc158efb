"""Collect every stage's JSON outputs under an output root into report.html, report.json and a model card."""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.io import write_atomic

from .html import Section, render_page


@dataclass(frozen=True)
class ReportConfig:
    """Section `report`."""

    title: str = "clip-pipeline run report"
    curve_smoothing: int = 10  # moving-average window for the training-loss plot


@dataclass(frozen=True)
class ReportResult:
    """Where the report went and which sections it has."""

    html_path: str
    json_path: str
    model_card_path: str
    sections: list[str]


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{key}/"))
        elif not isinstance(v, list):
            flat[key] = v
    return flat


def _kv_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in _flatten(d).items()]


def plot_training_curve(metrics_jsonl: Path, png: Path, window: int) -> bool:
    """Loss (raw and smoothed) and learning rate against step; False when there is nothing to plot."""
    rows = [json.loads(line) for line in metrics_jsonl.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "loss" in r and "step" in r]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    steps = np.array([r["step"] for r in rows])
    loss = np.array([r["loss"] for r in rows], dtype=float)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    ax[0].plot(steps, loss, alpha=0.35, label="loss")
    if len(loss) >= window > 1:
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax[0].plot(steps[window - 1 :], smooth, label=f"mean of {window}")
    ax[0].set(xlabel="step", ylabel="contrastive loss", title="training loss")
    ax[0].legend()
    if "lr" in rows[0]:
        ax[1].plot(steps, [r["lr"] for r in rows])
        ax[1].set(xlabel="step", ylabel="learning rate", title="schedule")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return True


def _model_card(out: Path, evaluation: dict[str, Any] | None, registry: dict[str, Any] | None) -> str:
    model_json = _load_json(out / "train" / "model" / "model.json") or {}
    run_info = _load_json(out / "train" / "model" / "run_info.json") or {}
    lines = [
        "# Model card",
        "",
        "## Model",
        f"- Architecture: `{json.dumps(model_json)}`" if model_json else "- Architecture: (no trained model found)",
        f"- Trained at git revision `{run_info.get('git_revision', 'unknown')}` on data version "
        f"`{run_info.get('data_version', 'unknown')}`",
        "",
        "## Intended use",
        "- Research on contrastive image-text pre-training; zero-shot classification and retrieval on data",
        "  resembling the training distribution. Not for decisions about people.",
        "",
        "## Evaluation",
    ]
    for k, v in sorted((evaluation or {}).items()):
        lines.append(f"- {k}: {v:.4f}" if isinstance(v, float) else f"- {k}: {v}")
    lines += [
        "",
        "## Limitations and bias",
        "- Zero-shot accuracy depends on the class names and prompt templates; see the bias section of the report",
        "  for how label-set design changes which groups receive flagged labels.",
        "- Evaluation sets may overlap the training data; see the overlap audit for the measured effect.",
    ]
    if registry and registry.get("champion"):
        c = registry["champion"]
        lines += ["", "## Registry", f"- Champion: v{c['version']} ({c['reason']})"]
    return "\n".join(lines) + "\n"


def build_report(out_root: str | Path, cfg: ReportConfig, registry_path: str | Path | None = None) -> ReportResult:
    """Read what the stages wrote under `out_root` and write `out_root/report/`."""
    out = Path(out_root)
    dest = out / "report"
    dest.mkdir(parents=True, exist_ok=True)
    sections: list[Section] = []
    numbers: dict[str, Any] = {}

    ingest = _load_json(out / "ingest" / "summary.json")
    if ingest is not None:
        numbers["ingest"] = ingest
        sections.append(Section("Data ingestion", tables=[("summary", _kv_rows(ingest))]))
    validate = _load_json(out / "validate" / "result.json")
    if validate is not None:
        numbers["validate"] = validate
        ok = validate.get("passed")
        verdict = "<span class='pass'>passed</span>" if ok else "<span class='fail'>failed</span>"
        rows = validate.get("expectations") if isinstance(validate.get("expectations"), list) else _kv_rows(validate)
        links = [("Data Docs", os.path.relpath(p, dest))] if (p := out / "validate" / "report.html").exists() else []
        sections.append(Section("Validation", text=[f"Validation {verdict}."], tables=[("expectations", rows)], links=links))
    for name, title in [("audit", "Dedup and overlap audit")]:
        data = _load_json(out / name / "summary.json")
        if data is not None:
            numbers[name] = data
            sections.append(Section(title, tables=[("summary", _kv_rows(data))]))

    metrics_jsonl = out / "train" / "metrics.jsonl"
    if metrics_jsonl.exists():
        png = dest / "training_curve.png"
        rows = [json.loads(x) for x in metrics_jsonl.read_text().splitlines() if x.strip()]
        last = rows[-1] if rows else {}
        numbers["train"] = {"last": last, "logged_points": len(rows)}
        imgs = [png] if plot_training_curve(metrics_jsonl, png, cfg.curve_smoothing) else []
        sections.append(Section("Training", tables=[("last logged step", _kv_rows(last))], images=imgs))

    evaluation = _load_json(out / "evaluate" / "metrics.json")
    if evaluation is not None:
        numbers["evaluate"] = evaluation
        imgs = sorted((out / "evaluate").glob("**/*.png"))
        sections.append(Section("Evaluation", tables=[("metrics", _kv_rows(evaluation))], images=imgs))

    bias = _load_json(out / "bias" / "summary.json")
    if bias is not None:
        numbers["bias"] = bias
        imgs = sorted((out / "bias").glob("**/*.png"))
        findings = out / "bias" / "findings.txt"
        text = [html.escape(line) for line in findings.read_text().splitlines() if line.strip()] if findings.exists() else []
        links = (
            [("full bias report", os.path.relpath(out / "bias" / "bias.html", dest))]
            if (out / "bias" / "bias.html").exists()
            else []
        )
        sections.append(Section("Bias probes", text=text, tables=[("summary", _kv_rows(bias))], images=imgs, links=links))

    registry = _load_json(Path(registry_path)) if registry_path and Path(registry_path).exists() else None
    if registry:
        numbers["registry"] = registry
        entries = [{k: e[k] for k in ("version", "promoted", "reason", "data_version", "time")} for e in registry["entries"]]
        sections.append(Section("Model registry", tables=[("champion/challenger history", entries)]))

    card = _model_card(out, evaluation, registry)
    sections.append(Section("Model card", text=[f"<pre>{html.escape(card)}</pre>"]))
    paths = {"html": dest / "report.html", "json": dest / "report.json", "card": dest / "MODEL_CARD.md"}
    write_atomic(paths["html"], render_page(cfg.title, sections))
    write_atomic(paths["json"], json.dumps(numbers, indent=2, default=str))
    write_atomic(paths["card"], card)
    return ReportResult(str(paths["html"]), str(paths["json"]), str(paths["card"]), [s.title for s in sections])
