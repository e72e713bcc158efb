"""Collect every stage's JSON outputs under an output root into report.html, report.json and a model card."""

from __future__ import annotations

import io
import json
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

from components.io import write_atomic

from .headline import Headline, data_counts, decide, markdown, metric_grid, verdicts
from .html import kv_rows, render


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
    headline_md: str = ""  # the first screen as markdown (the Prefect run page's artifact)
    verdict: str = ""  # its first line: promoted or not


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
    fig, ax = plt.subplots(1, 2, figsize=(8, 2.6))
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


@dataclass
class Section:
    """One titled part of the details below the first screen; `id` is its anchor."""

    title: str
    id: str
    text: list[str] = field(default_factory=list)
    tables: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # PNG paths or URLs, inlined
    links: list[tuple[str, str]] = field(default_factory=list)
    folded_images: bool = False  # many plots: behind a <details>


def build_report(
    out_root: str | Path, cfg: ReportConfig, registry_path: str | Path | None = None, gate_metric: str | None = None
) -> ReportResult:
    """Read what the stages wrote under `out_root` (a path or any fsspec URL) and write `out_root/report/`.

    `gate_metric` is the registry's promotion metric (registry.metric): the first screen compares it with the
    previous champion's.
    """
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
        shown = {k: v for k, v in ingest.items() if k != "config"}
        sections.append(Section("Data ingestion", "data", tables=[("summary", kv_rows(shown))]))
    validate = out.json("validate/result.json")
    if validate is not None:
        numbers["validate"] = validate
        rows = validate.get("expectations") if isinstance(validate.get("expectations"), list) else kv_rows(validate)
        rows = [{k: v for k, v in r.items() if k != "kwargs"} for r in rows]
        links = [("Data validation report", rel("validate/report.html"))] if out.exists("validate/report.html") else []
        word = "passed" if validate.get("passed") else "failed"
        sections.append(Section("Validation", "validation", text=[f"Validation {word}."], tables=[("expectations", rows)],
                                links=links))  # fmt: skip
    filtered = out.json("filter/filter.json")
    if filtered is not None and filtered.get("enabled"):
        numbers["filter"] = {k: v for k, v in filtered.items() if k != "line"}
        rows = [{"reason": "kept", "pairs": filtered["n_kept"]}] + [
            {"reason": k, "pairs": v} for k, v in filtered["by_reason"].items()
        ]
        links = (
            [("Filter review page (pairs around the threshold)", rel("filter/filter.html"))]
            if out.exists("filter/filter.html")
            else []
        )
        sections.append(Section("CLIP-score filter", "filter", text=[f"Teacher {filtered['teacher']}: {filtered['line']}."],
                                tables=[("pairs per reason", rows)], links=links))  # fmt: skip
    audit = out.json("audit/summary.json")
    overlap = out.json("audit/overlap.json")
    dedup = out.json("audit/dedup.json")
    if audit is not None:
        numbers["audit"] = audit
        links = [("Overlap review page (closest pairs)", rel("audit/overlap.html"))] if out.exists("audit/overlap.html") else []
        text = [overlap["summary"]["line"]] if overlap else []
        tables = [("overlap per dataset", overlap["datasets"])] if overlap else []
        tables.append(("dedup", kv_rows({k: v for k, v in (dedup or {}).items() if not isinstance(v, (list, dict))})))
        sections.append(Section("Dedup and overlap audit", "overlap", text=text, tables=tables, links=links))

    metrics = out.text("train/metrics.jsonl")
    last: dict[str, Any] = {}
    curve = None
    if metrics is not None:
        png = out / "report/training_curve.png"
        rows = [json.loads(x) for x in metrics.splitlines() if x.strip()]
        last = rows[-1] if rows else {}
        numbers["train"] = {"last": last, "logged_points": len(rows)}
        curve = png if plot_training_curve(out / "train/metrics.jsonl", png, cfg.curve_smoothing) else None
        sections.append(Section("Training", "training", tables=[("last logged step", kv_rows(last))]))

    evaluation = out.json("evaluate/metrics.json")
    if evaluation is not None:
        numbers["evaluate"] = evaluation
        links = [("Evaluation tables", rel("evaluate/results.html"))] if out.exists("evaluate/results.html") else []
        sections.append(Section("Evaluation", "evaluation", tables=[("metrics", _metric_rows(evaluation))],
                                images=out.glob("evaluate/**/*.png"), links=links, folded_images=True))  # fmt: skip

    transfer = out.json("evaluate/transfer/transfer.json")
    if transfer is not None:  # WiSE-FT: the initial, fine-tuned and interpolated models side by side
        numbers["transfer"] = transfer
        text = [f"Zero-shot top-1 of the model training started from ({transfer['initial']}), the fine-tuned model, "
                f"and their weight-space interpolation at alpha {transfer['alpha']:g} (evaluate.wise_ft_alpha)."]  # fmt: skip
        sections.append(Section("Zero-shot transfer kept (WiSE-FT)", "transfer", text=text,
                                tables=[("zero-shot top-1", transfer["rows"])]))  # fmt: skip

    bias = out.json("bias/summary.json")
    bias_doc = out.json("bias/bias.json")
    findings = out.text("bias/findings.txt") or ""
    if bias is not None:
        numbers["bias"] = bias
        links = [("Full bias report", rel("bias/bias.html"))] if out.exists("bias/bias.html") else []
        text = [line for line in findings.splitlines() if line.strip()]
        sections.append(Section("Bias probes", "bias", text=text, tables=[("summary", kv_rows(bias))],
                                images=out.glob("bias/**/*.png"), links=links, folded_images=True))  # fmt: skip

    warnings = _stage_warnings(out)
    if warnings:
        numbers["warnings"] = warnings
        sections.append(Section("Warnings", "warnings", text=["Python warnings raised while the stages ran, counted."],
                                tables=[("warnings", warnings)]))  # fmt: skip

    registry = _load_json(registry_path)
    if registry:
        numbers["registry"] = registry
        cols = ("version", "promoted", "reason", "data", "data_version", "time")
        entries = [{k: e.get(k, "") for k in cols} for e in registry["entries"]]
        sections.append(Section("Model registry", "registry", tables=[("champion/challenger history", entries)]))

    card = _model_card(out, evaluation, registry)
    sections.append(Section("Model card", "card"))
    metric = gate_metric or _guess_metric(evaluation)
    decision, champion = decide(registry, evaluation, metric)
    columns, grid = metric_grid(evaluation, champion)
    head = Headline(
        decision=decision,
        columns=columns,
        rows=grid,
        counts=data_counts(ingest, dedup, validate),
        verdicts=verdicts(overlap, audit, bias_doc, findings),
        training=last,
        n_warnings=sum(w["count"] for w in warnings),
    )
    run_info = out.json("train/model/run_info.json") or {}
    page = render(
        "report.html", title=cfg.title, head=head, curve=curve, sections=sections, card=card, run_info=run_info,
        params_text=out.text("run_params.yaml"), numbers=json.dumps(numbers, indent=2, default=str),
    )  # fmt: skip
    paths = {"html": f"{dest}/report.html", "json": f"{dest}/report.json", "card": f"{dest}/MODEL_CARD.md"}
    md = markdown(head, paths["html"])
    write_atomic(paths["html"], page)
    write_atomic(paths["json"], json.dumps(numbers, indent=2, default=str))
    write_atomic(paths["card"], card)
    write_atomic(f"{dest}/headline.md", md)
    titles = [s.title for s in sections]
    return ReportResult(str(paths["html"]), str(paths["json"]), str(paths["card"]), titles, md, decision.title)


def _metric_rows(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """`dataset/task/metric` keys as one row per (dataset, task), metrics as columns."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for k, v in evaluation.items():
        parts = k.split("/")
        if len(parts) < 3:
            rows.setdefault((k, ""), {"dataset": k, "task": ""})["value"] = v
            continue
        d, t, m = parts[0], parts[1], "/".join(parts[2:])
        rows.setdefault((d, t), {"dataset": d, "task": t})[m] = v
    return list(rows.values())


def _stage_warnings(out: _Root) -> list[dict[str, Any]]:
    """OUT/logs/warnings/<stage>.json (written by the flow), one row per distinct warning."""
    rows = []
    for url in out.glob("logs/warnings/*.json"):
        stage = url.rsplit("/", 1)[-1].removesuffix(".json")
        rows += [{"stage": stage, **w} for w in _load_json(url) or []]
    return rows


def _guess_metric(evaluation: dict[str, Any] | None) -> str:
    """Without registry.metric: the first zero-shot top-1 there is."""
    return next((k for k in (evaluation or {}) if k.endswith("zeroshot_classification/acc1")), "")
