"""Which pairs the filter keeps: DataComp's basic filters, then the CLIP-score rule. Pure functions over arrays."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .config import FilterConfig

KEPT = "kept"
# Reasons in the order they are tested: a pair gets the first one it fails.
BASIC_REASONS = ("caption_chars", "caption_words", "image_side", "aspect_ratio")
SCORE_REASONS = ("unreadable", "low_score", "below_top_fraction")


def basic_reasons(meta: pd.DataFrame, cfg: FilterConfig) -> np.ndarray:
    """(N,) object: the first basic filter each row of `meta` (caption, width, height) fails, or "" for none."""
    reason = np.full(len(meta), "", dtype=object)
    caption = meta["caption"].fillna("").astype(str)
    w, h = meta["width"].to_numpy(np.float64), meta["height"].to_numpy(np.float64)
    short, long = np.minimum(w, h), np.maximum(w, h)
    tests = (  # (reason, active, fails)
        ("caption_chars", cfg.min_caption_chars, lambda: caption.str.strip().str.len() < cfg.min_caption_chars),
        ("caption_words", cfg.min_caption_words, lambda: caption.str.split().str.len() < cfg.min_caption_words),
        ("image_side", cfg.min_image_side, lambda: short < cfg.min_image_side),
        ("aspect_ratio", cfg.max_aspect_ratio, lambda: long > cfg.max_aspect_ratio * short),  # no division: 0-px too
    )
    for name, active, fails in tests:
        if active:
            reason[(reason == "") & np.asarray(fails(), dtype=bool)] = name
    return reason


def keep_count(fraction: float, n: int) -> int:
    """floor(fraction * n), exact for decimal fractions (0.29 * 100 is 28.999... in floats, but keeps 29)."""
    return min(n, math.floor(round(fraction * n, 9)))


def select_pairs(keys: np.ndarray, scores: np.ndarray, basic: np.ndarray, cfg: FilterConfig) -> np.ndarray:
    """(N,) object reason per pair: "kept" or why it was dropped (basic filter first, then the score rule).

    keep_fraction keeps exactly `keep_count(keep_fraction, n)` of the n pairs that pass the basic filters and have a
    score, highest score first; equal scores are ordered by key, so the cut is the same on every run and engine.
    """
    reason = np.asarray(basic, dtype=object).copy()
    open_ = reason == ""
    unreadable = open_ & np.isnan(scores)
    reason[unreadable] = "unreadable"
    open_ &= ~unreadable
    if cfg.min_clip_score is not None:
        reason[open_ & (scores < cfg.min_clip_score)] = "low_score"
    elif cfg.keep_fraction is not None:
        idx = np.flatnonzero(open_)
        order = idx[np.lexsort((keys[idx].astype(str), -scores[idx]))]  # by score descending, then key ascending
        reason[order[keep_count(cfg.keep_fraction, len(idx)) :]] = "below_top_fraction"
    reason[reason == ""] = KEPT
    return reason


def threshold_of(scores: np.ndarray, reason: np.ndarray, cfg: FilterConfig) -> float | None:
    """The score at the cut: min_clip_score, or the lowest kept score under keep_fraction; None without a score rule."""
    if cfg.min_clip_score is not None:
        return cfg.min_clip_score
    kept = scores[reason == KEPT]
    if cfg.keep_fraction is not None and len(kept):
        return float(np.min(kept))
    return None
