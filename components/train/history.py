"""The training curve: OUT/train/metrics.jsonl (one record per logged step) as its last record and a CSV for plots."""

from __future__ import annotations

import json
from typing import Any

import fsspec

from components.io import write_atomic

CURVE_COLUMNS = ("step", "loss", "lr", "logit_scale", "samples_per_s")


def load_history(jsonl_url: str) -> list[dict[str, Any]] | None:
    """The logged records in order; None when training wrote no metrics file."""
    fs, path = fsspec.core.url_to_fs(jsonl_url)
    if not fs.exists(path):
        return None
    with fs.open(path, "r") as f:
        return [json.loads(line) for line in f.read().splitlines() if line.strip()]


def export_curve(jsonl_url: str, csv_url: str) -> dict[str, Any]:
    """Write the curve as CSV (CURVE_COLUMNS) for `dvc plots`, when there is one; return the last record ({} if none)."""
    rows = load_history(jsonl_url)
    if rows is None:
        return {}
    lines = [",".join(CURVE_COLUMNS)] + [",".join(str(r.get(c, "")) for c in CURVE_COLUMNS) for r in rows]
    write_atomic(csv_url, "\n".join(lines) + "\n")
    return rows[-1] if rows else {}
