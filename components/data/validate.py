"""`data validate`: a great-expectations suite over OUT/ingest/metadata.parquet (+ the quarantine rate from summary.json).

The HTML report is our own small page: GX Data Docs need a file-backed context and load their
CSS/JS from a CDN, which does not suit an offline, ephemeral run.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import pandas as pd

from components.data.config import ValidateConfig
from components.data.ingest import read_metadata
from components.data.storage import atomic_dir, join, url_to_fs, write_bytes


@dataclass(frozen=True)
class ValidateResult:
    """Outcome of the suite; `message` lists every failed expectation in words."""

    passed: bool
    message: str
    failed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_rows: int = 0


def _suite(cfg: ValidateConfig) -> list[tuple[str, str, object]]:
    """(name, asset, expectation) triples; asset is "metadata" or "summary"."""
    import great_expectations.expectations as gxe

    ex: list[tuple[str, str, object]] = [("row_count", "metadata", gxe.ExpectTableRowCountToBeBetween(min_value=cfg.min_rows))]
    for col in ("key", "caption", "width", "height", "format", "sha256", "phash"):
        ex.append((f"{col}_not_null", "metadata", gxe.ExpectColumnValuesToNotBeNull(column=col)))
    ex += [
        (
            "caption_length",
            "metadata",
            gxe.ExpectColumnValueLengthsToBeBetween(
                column="caption", min_value=cfg.min_caption_chars, max_value=cfg.max_caption_chars
            ),
        ),
        (
            "width_bounds",
            "metadata",
            gxe.ExpectColumnValuesToBeBetween(column="width", min_value=cfg.min_side, max_value=cfg.max_side),
        ),
        (
            "height_bounds",
            "metadata",
            gxe.ExpectColumnValuesToBeBetween(column="height", min_value=cfg.min_side, max_value=cfg.max_side),
        ),
        (
            "aspect_ratio",
            "metadata",
            gxe.ExpectColumnValuesToBeBetween(column="aspect_ratio", min_value=1.0, max_value=cfg.max_aspect_ratio),
        ),
        ("allowed_formats", "metadata", gxe.ExpectColumnValuesToBeInSet(column="format", value_set=list(cfg.allowed_formats))),
        ("unique_keys", "metadata", gxe.ExpectColumnValuesToBeUnique(column="key")),
        (
            "duplicate_sha256_rate",
            "metadata",
            gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(column="sha256", min_value=1.0 - cfg.max_duplicate_sha256_rate),
        ),
        (
            "quarantine_rate",
            "summary",
            gxe.ExpectColumnMaxToBeBetween(column="quarantine_rate", max_value=cfg.max_quarantine_rate),
        ),
    ]
    return ex


def load_tables(ingest_dir: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """metadata.parquet (+ aspect_ratio column) and a one-row summary frame from summary.json."""
    meta = read_metadata(ingest_dir)
    fs, path = url_to_fs(join(ingest_dir, "summary.json"))
    with fs.open(path, "rb") as f:
        summary = json.load(f)
    w, h = meta["width"].astype(float), meta["height"].astype(float)
    meta["aspect_ratio"] = pd.concat([w, h], axis=1).max(axis=1) / pd.concat([w, h], axis=1).min(axis=1).clip(lower=1)
    return meta, pd.DataFrame({"quarantine_rate": [float(summary.get("quarantine_rate", 0.0))]}), summary


def validate(ingest_dir: str, out_dir: str, cfg: ValidateConfig) -> ValidateResult:
    """Run the suite on OUT/ingest; write OUT/validate/result.json and report.html; return pass/fail with a readable message."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    meta, summary_df, _ = load_tables(ingest_dir)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)  # no tqdm bar per validation
    source = ctx.data_sources.add_pandas("ingest")
    batches = {
        name: source.add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": df})
        for name, df in (("metadata", meta), ("summary", summary_df))
    }
    suites = {name: ctx.suites.add(gx.ExpectationSuite(name=f"clip_pipeline_{name}")) for name in batches}
    for name, asset, expectation in _suite(cfg):
        expectation.meta = {"name": name, "blocking": name not in cfg.warn_only}
        suites[asset].add_expectation(expectation)
    results = [r for name, b in batches.items() for r in b.validate(suites[name]).to_json_dict()["results"]]
    rows = [_row(r) for r in results]
    failed = [r["name"] for r in rows if not r["success"] and r["blocking"]]
    warned = [r["name"] for r in rows if not r["success"] and not r["blocking"]]
    lines = [f"  - {r['name']}{'' if r['blocking'] else ' (warn only)'}: {r['observed']}" for r in rows if not r["success"]]
    if failed:
        message = f"data validation FAILED on {ingest_dir}: {len(failed)} blocking expectation(s) failed:\n" + "\n".join(lines)
    else:
        message = f"data validation passed on {ingest_dir} ({len(rows)} expectations, {len(meta)} rows)"
        if warned:
            message += "; warnings:\n" + "\n".join(lines)
    result = ValidateResult(not failed, message, failed, warned, len(meta))
    with atomic_dir(out_dir) as tmp:
        doc = {
            "passed": result.passed,
            "message": message,
            "failed": failed,
            "warnings": warned,
            "n_rows": len(meta),
            "expectations": rows,
            "config": asdict(cfg),
        }
        write_bytes(join(tmp, "result.json"), json.dumps(doc, indent=2, default=str).encode())
        write_bytes(join(tmp, "gx_results.json"), json.dumps(results, indent=2, default=str).encode())
        write_bytes(join(tmp, "report.html"), _html(result, rows).encode())
    return result


def _row(r: dict) -> dict:
    cfg = r["expectation_config"]
    res = r.get("result") or {}
    if "observed_value" in res:
        observed = f"observed {res['observed_value']}"
    else:
        observed = f"{res.get('unexpected_count', 0)} of {res.get('element_count', 0)} rows unexpected"
        if res.get("partial_unexpected_list"):
            observed += f", e.g. {res['partial_unexpected_list'][:3]}"
    kwargs = {k: v for k, v in cfg["kwargs"].items() if k not in ("batch_id",)}
    return {"name": cfg["meta"]["name"], "blocking": cfg["meta"]["blocking"], "success": bool(r["success"]),
            "expectation": cfg["type"], "kwargs": kwargs, "observed": observed}  # fmt: skip


def _html(result: ValidateResult, rows: list[dict]) -> str:
    from components.report.html import render

    return render("validation.html", title="data validation", passed=result.passed, message=result.message, rows=rows)
