"""Collect every stage's JSON outputs under an output root into report.html, report.json and a model card."""

from __future__ import annotations

import html
import io
import json
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

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


class _Root:
    """Files under the output root, on any fsspec URL (local path, s3://, memory://)."""

    def __init__(self, url: str | Path) -> None:
        self.url = str(url).rstrip("/")
        self.fs, self.path = fsspec.core.url_to_fs(self.url)

    def __truediv__(self, rel: str) -> str:
        return f"{self.url}/{rel}"

    def exists(self, rel: str) -> bool:
        return self.fs.exists(f"{self.path}/{rel}")

    def text(self, rel: str) -> str | None:
        return self.fs.cat_file(f"{self.path}/{rel}").decode() if self.exists(rel) else None

    def json(self, rel: str) -> Any:
        text = self.text(rel)
        return json.loads(text) if text is not None else None

    def glob(self, rel: str) -> list[str]:
        """URLs (or local paths) matching `rel`, sorted."""
        found = sorted(self.fs.glob(f"{self.path}/{rel}"))
        return [self.url + p[len(self.path) :] for p in found]


def _load_json(url: str | Path | None) -> Any:
    if not url:
        return None
    fs, path = fsspec.core.url_to_fs(str(url))
    return json.loads(fs.cat_file(path)) if fs.exists(path) else None


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


def plot_training_curve(metrics_jsonl: str, png: str, window: int) -> bool:
    """Loss (raw and smoothed) and learning rate against step (both any fsspec URL); False when there is nothing to plot."""
    with fsspec.open(str(metrics_jsonl), "r") as f:
        rows = [json.loads(line) for line in f.read().splitlines() if line.strip()]
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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    with fsspec.open(str(png), "wb") as f:
        f.write(buf.getvalue())
    return True


def _model_card(out: _Root, evaluation: dict[str, Any] | None, registry: dict[str, Any] | None) -> str:
    model_json = out.json("train/model/model.json") or {}
    run_info = out.json("train/model/run_info.json") or {}
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
    """Read what the stages wrote under `out_root` (a path or any fsspec URL) and write `out_root/report/`."""
    out = _Root(out_root)
    dest = out / "report"
    out.fs.makedirs(f"{out.path}/report", exist_ok=True)
    sections: list[Section] = []
    numbers: dict[str, Any] = {}

    def rel(target: str) -> str:  # a link from report/ to another output (works the same on disk and in a bucket)
        return posixpath.relpath(target, "report")

    ingest = out.json("ingest/summary.json")
    if ingest is not None:
        numbers["ingest"] = ingest
        sections.append(Section("Data ingestion", tables=[("summary", _kv_rows(ingest))]))
    validate = out.json("validate/result.json")
    if validate is not None:
        numbers["validate"] = validate
        ok = validate.get("passed")
        verdict = "<span class='pass'>passed</span>" if ok else "<span class='fail'>failed</span>"
        rows = validate.get("expectations") if isinstance(validate.get("expectations"), list) else _kv_rows(validate)
        links = [("Data Docs", rel("validate/report.html"))] if out.exists("validate/report.html") else []
        sections.append(Section("Validation", text=[f"Validation {verdict}."], tables=[("expectations", rows)], links=links))
    for name, title in [("audit", "Dedup and overlap audit")]:
        data = out.json(f"{name}/summary.json")
        if data is not None:
            numbers[name] = data
            sections.append(Section(title, tables=[("summary", _kv_rows(data))]))

    metrics = out.text("train/metrics.jsonl")
    if metrics is not None:
        png = out / "report/training_curve.png"
        rows = [json.loads(x) for x in metrics.splitlines() if x.strip()]
        last = rows[-1] if rows else {}
        numbers["train"] = {"last": last, "logged_points": len(rows)}
        imgs = [png] if plot_training_curve(out / "train/metrics.jsonl", png, cfg.curve_smoothing) else []
        sections.append(Section("Training", tables=[("last logged step", _kv_rows(last))], images=imgs))

    evaluation = out.json("evaluate/metrics.json")
    if evaluation is not None:
        numbers["evaluate"] = evaluation
        imgs = out.glob("evaluate/**/*.png")
        sections.append(Section("Evaluation", tables=[("metrics", _kv_rows(evaluation))], images=imgs))

    bias = out.json("bias/summary.json")
    if bias is not None:
        numbers["bias"] = bias
        imgs = out.glob("bias/**/*.png")
        findings = out.text("bias/findings.txt") or ""
        text = [html.escape(line) for line in findings.splitlines() if line.strip()]
        links = [("full bias report", rel("bias/bias.html"))] if out.exists("bias/bias.html") else []
        sections.append(Section("Bias probes", text=text, tables=[("summary", _kv_rows(bias))], images=imgs, links=links))

    registry = _load_json(registry_path)
    if registry:
        numbers["registry"] = registry
        cols = ("version", "promoted", "reason", "data", "data_version", "time")
        entries = [{k: e.get(k, "") for k in cols} for e in registry["entries"]]
        sections.append(Section("Model registry", tables=[("champion/challenger history", entries)]))

    card = _model_card(out, evaluation, registry)
    sections.append(Section("Model card", text=[f"<pre>{html.escape(card)}</pre>"]))
    paths = {"html": f"{dest}/report.html", "json": f"{dest}/report.json", "card": f"{dest}/MODEL_CARD.md"}
    write_atomic(paths["html"], render_page(cfg.title, sections))
    write_atomic(paths["json"], json.dumps(numbers, indent=2, default=str))
    write_atomic(paths["card"], card)
    return ReportResult(str(paths["html"]), str(paths["json"]), str(paths["card"]), [s.title for s in sections])
