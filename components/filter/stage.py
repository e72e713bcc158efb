"""`filter_pairs`: score every ingested pair with a teacher, keep by CLIP score and basic filters, write the results.

Outputs under `out_dir` (normally OUT/filter): scores.parquet (key, score, kept, reason, one row per ingested
pair), kept_keys.txt (one key per line: training reads only these while filter.enabled), filter.json (counts
per reason, the threshold, the teacher, throughput) and filter.html (the pairs around the threshold).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from components.data.ingest import read_metadata
from components.io import write_atomic, write_json, write_parquet

from .config import FilterConfig
from .select import BASIC_REASONS, KEPT, SCORE_REASONS, basic_reasons, select_pairs, threshold_of


@dataclass(frozen=True)
class FilterResult:
    """Counts and where things went; `n_kept + sum(by_reason.values()) == n_pairs`."""

    out_dir: str
    n_pairs: int
    n_kept: int
    by_reason: dict[str, int]
    threshold: float | None
    seconds: float
    engine: str

    @property
    def pairs_per_s(self) -> float:
        return self.n_pairs / self.seconds if self.seconds else 0.0

    @property
    def line(self) -> str:
        """The stage's one console line."""
        drops = ", ".join(f"{k} {v}" for k, v in self.by_reason.items() if v)
        cut = f", threshold {self.threshold:.4f}" if self.threshold is not None else ""
        speed = f"{self.engine}, {self.pairs_per_s:.0f} pairs/s"
        return f"kept {self.n_kept} of {self.n_pairs} pairs ({drops or 'none dropped'}{cut}; {speed})"


def load_metadata(ingest_dir: str) -> pd.DataFrame:
    """The ingested rows the filter needs: key, caption, width, height, shard (no image is decoded for the sizes)."""
    return read_metadata(ingest_dir, ["key", "caption", "width", "height", "shard"])


def shard_urls(ingest_dir: str, meta: pd.DataFrame) -> list[str]:
    """The ingested shards that hold rows, sorted."""
    return [f"{ingest_dir.rstrip('/')}/shards/{s}" for s in sorted(meta["shard"].astype(str).unique())]


def score_metadata(
    ingest_dir: str, meta: pd.DataFrame, teacher: Any, cfg: FilterConfig, engine: Literal["local", "ray"]
) -> np.ndarray:
    """(N,) float32 score per row of `meta` (NaN: unreadable, or in no shard), computed by `engine`."""
    shards = shard_urls(ingest_dir, meta)
    if engine == "ray":
        from .ray_score import score_shards_ray

        got = score_shards_ray(shards, teacher, cfg.batch_size, cfg.ray_actors, cfg.device)
    else:
        from .score import score_shards_local

        got = score_shards_local(shards, teacher, cfg.batch_size)
    by_key = pd.Series(got["score"], index=pd.Index(got["key"].astype(str)))
    return by_key.reindex(meta["key"].astype(str)).to_numpy(np.float32)


def filter_pairs(
    ingest_dir: str, out_dir: str, cfg: FilterConfig, teacher_dir: str, engine: Literal["local", "ray"] = "local"
) -> FilterResult:
    """Score, select and write (see the module docstring). `teacher_dir`: a local copy of filter.teacher."""
    from .report import write_report
    from .score import load_teacher

    meta = load_metadata(ingest_dir)
    teacher = load_teacher(teacher_dir, cfg.device, cfg.precision, cfg.teacher_config)
    t0 = time.perf_counter()  # scoring throughput: reading, decoding and both towers, not the teacher's loading
    scores = score_metadata(ingest_dir, meta, teacher, cfg, engine)
    seconds = time.perf_counter() - t0
    keys = meta["key"].astype(str).to_numpy(dtype=object)
    reason = select_pairs(keys, scores, basic_reasons(meta, cfg), cfg)
    counts = Counter(reason.tolist())
    by_reason = {r: counts.get(r, 0) for r in (*BASIC_REASONS, *SCORE_REASONS)}
    r = FilterResult(out_dir, len(meta), counts.get(KEPT, 0), by_reason, threshold_of(scores, reason, cfg), seconds, engine)
    table = pd.DataFrame({"key": keys, "score": scores, "kept": reason == KEPT, "reason": reason})
    write_parquet(f"{out_dir}/scores.parquet", table)
    write_atomic(f"{out_dir}/kept_keys.txt", "".join(f"{k}\n" for k in sorted(keys[reason == KEPT])))
    summary = {
        "enabled": True, "line": r.line, "n_pairs": r.n_pairs, "n_kept": r.n_kept, "kept_fraction": r.n_kept / max(1, r.n_pairs),
        "by_reason": by_reason, "threshold": r.threshold, "engine": engine, "teacher": cfg.teacher,
        "teacher_sha256": teacher.sha256, "seconds": round(seconds, 3), "pairs_per_s": round(r.pairs_per_s, 1),
        "score_mean": float(np.nanmean(scores)) if np.isfinite(scores).any() else None,
    }  # fmt: skip
    write_json(f"{out_dir}/filter.json", summary)
    write_report(f"{out_dir}/filter.html", f"{ingest_dir.rstrip('/')}/shards", meta, table, summary, cfg)
    return r


def write_disabled(out_dir: str) -> None:
    """filter.enabled false: an empty kept list (never read), empty scores and filter.json saying so (DVC's outputs)."""
    empty = pd.DataFrame({"key": pd.Series([], dtype=str), "score": pd.Series([], dtype=np.float32),
                          "kept": pd.Series([], dtype=bool), "reason": pd.Series([], dtype=str)})  # fmt: skip
    write_parquet(f"{out_dir}/scores.parquet", empty)
    write_atomic(f"{out_dir}/kept_keys.txt", "")
    write_json(f"{out_dir}/filter.json", {"enabled": False, "line": "disabled (filter.enabled: false)"})
