"""Result tables of an evaluation run: flat DVC metrics, markdown/HTML per task, and CLIP_benchmark's CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

# `clip_benchmark build` writes one row per result JSON: the record's fields plus its metrics and
# `model_fullname`; these lead, then every metric column seen (so tables concatenate with theirs).
BENCHMARK_COLUMNS = ("dataset", "model", "pretrained", "task", "language", "model_fullname")


def flat_metrics(records: list[dict[str, Any]]) -> dict[str, float]:
    """`{dataset}/{task}/{metric}` -> value for every scalar metric (for `dvc metrics show`)."""
    out = {}
    for r in records:
        for k, v in r["metrics"].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{r['dataset']}/{r['task']}/{k}"] = v
    return out


def results_tables(records: list[dict[str, Any]]) -> tuple[str, str]:
    """(markdown, html): one table per task, one row per dataset, scalar metrics as columns."""
    import pandas as pd

    from components.report.html import render

    md, tables = [], []
    for task in dict.fromkeys(r["task"] for r in records):
        rows = [
            {"dataset": r["dataset"], **{k: v for k, v in r["metrics"].items() if isinstance(v, (int, float))}}
            for r in records
            if r["task"] == task
        ]
        df = pd.DataFrame(rows).set_index("dataset")
        md.append(f"### {task}\n\n{df.to_markdown(floatfmt='.4f') if _has_tabulate() else df.to_string()}\n")
        tables.append((task, rows))
    return "\n".join(md), render("evaluation.html", title="evaluation", tables=tables)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def benchmark_csv(records: list[dict[str, Any]]) -> str:
    """The records as `clip_benchmark build`'s table: identity columns, then scalar metrics (acc1, ..., mean_average_precision).

    One row per record with at least one scalar metric; `n_corrupt` and `format` ride along as extra columns.
    """
    rows, metric_cols = [], {}
    for r in records:
        metrics = {k: v for k, v in r["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if not metrics:
            continue
        metric_cols.update(dict.fromkeys(metrics))
        row = {k: r.get(k, "") for k in BENCHMARK_COLUMNS}
        row["model_fullname"] = f"{r['model']} {r['pretrained']}"
        row.update(metrics, n_corrupt=r.get("n_corrupt", 0), format=r.get("format", ""))
        rows.append(row)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*BENCHMARK_COLUMNS, *metric_cols, "n_corrupt", "format"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
