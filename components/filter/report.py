"""OUT/filter/filter.html: counts per reason, the score histogram, and the pairs on both sides of the threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from components.audit.shards import load_shard_images
from components.io import write_atomic
from components.report.html import render

from .config import FilterConfig
from .select import BASIC_REASONS, KEPT

THUMB = 96  # px, the longer side of an example's thumbnail


def examples(table: pd.DataFrame, n: int) -> dict[str, pd.DataFrame]:
    """The pairs a person checks: kept with the lowest scores, dropped by the score rule with the highest, and the
    first few of each basic filter."""
    scored = table[np.isfinite(table["score"])]
    kept = scored[scored["kept"]].sort_values(["score", "key"]).head(n)
    by_score = scored[scored["reason"].isin(["low_score", "below_top_fraction"])]
    groups = {
        "kept, lowest scores": kept,
        "dropped by score, highest scores": by_score.sort_values(["score", "key"], ascending=[False, True]).head(n),
    }
    for r in BASIC_REASONS:
        rows = table[table["reason"] == r].sort_values("key").head(max(1, n // 3))
        if len(rows):
            groups[f"dropped: {r}"] = rows
    return {k: v for k, v in groups.items() if len(v)}


def _histogram(table: pd.DataFrame, threshold: float | None) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.6))
    s = table[np.isfinite(table["score"])]
    bins = np.histogram_bin_edges(s["score"], bins=40) if len(s) else 10
    ax.hist([s.loc[s["kept"], "score"], s.loc[~s["kept"], "score"]], bins=bins, stacked=True, label=["kept", "dropped"],
            color=["#2a7", "#c44"])  # fmt: skip
    if threshold is not None:
        ax.axvline(threshold, color="k", lw=1, ls="--", label="threshold")
    ax.set_xlabel("CLIP score (cosine)")
    ax.set_ylabel("pairs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_report(
    path: str, shards_dir: str, meta: pd.DataFrame, table: pd.DataFrame, summary: dict[str, Any], cfg: FilterConfig
) -> None:
    """Render filter.html through the one Jinja2 path (components/report/templates/filter.html)."""
    import matplotlib.pyplot as plt

    groups = examples(table, cfg.report_examples)
    keys = sorted({k for g in groups.values() for k in g["key"]})
    images = load_shard_images(shards_dir, meta, keys)
    captions = dict(zip(meta["key"].astype(str), meta["caption"].astype(str)))
    shown = []
    for title, rows in groups.items():
        pairs = []
        for r in rows.itertuples():
            img = images.get(r.key)
            if img is not None:
                img = img.copy()
                img.thumbnail((THUMB, THUMB))
            pairs.append({"key": r.key, "score": r.score, "kept": r.reason == KEPT, "reason": r.reason,
                          "caption": captions.get(r.key, ""), "image": img})  # fmt: skip
        shown.append({"title": title, "pairs": pairs})
    reasons = [{"reason": KEPT, "pairs": summary["n_kept"]}] + [
        {"reason": k, "pairs": v} for k, v in summary["by_reason"].items()
    ]
    fig = _histogram(table, summary["threshold"])
    page = render("filter.html", title="CLIP-score filter", summary=summary, reasons=reasons, groups=shown, histogram=fig)
    plt.close(fig)
    write_atomic(path, page)
