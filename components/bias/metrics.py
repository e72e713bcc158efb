"""Per-group rates, disparities (max-min gap, max/min ratio) and variant changes, with stratified bootstrap intervals.

Every quantity is a ratio of sums over a group's images, `sum(num) / sum(den)` (a flagged rate:
num = flagged, den = 1; accuracy: num = correct, den = true label defined). One bootstrap draw
resamples each group's images with replacement (group sizes fixed) and re-weights every quantity
with the same counts, so the intervals of differences between variants are paired. numpy only.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroupStats:
    """Point values (G, M) and bootstrap values (B, G, M) of M quantities over G groups."""

    groups: list[str]
    sizes: np.ndarray  # (G,)
    names: list[str]  # the M quantity names
    point: np.ndarray  # (G, M)
    boot: np.ndarray  # (B, G, M)


def group_indices(values: Sequence[str]) -> dict[str, np.ndarray]:
    """Group value -> sorted image indices, groups in sorted order."""
    arr = np.asarray(values, dtype=object)
    return {g: np.flatnonzero(arr == g) for g in sorted(set(arr.tolist()))}


def bootstrap_weights(n: int, b: int, rng: np.random.Generator) -> np.ndarray:
    """(b, n) multiplicities of n items in b resamples of size n drawn with replacement."""
    idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def group_stats(
    quantities: Mapping[str, tuple[np.ndarray, np.ndarray]],
    groups: Mapping[str, np.ndarray],
    n_boot: int,
    seed: int | Sequence[int],
) -> GroupStats:
    """Every quantity `name -> (num (N,), den (N,))` per group `value -> indices`, plus n_boot stratified resamples."""
    names = list(quantities)
    num = np.stack([np.asarray(quantities[k][0], dtype=np.float64) for k in names], axis=1)  # (N, M)
    den = np.stack([np.asarray(quantities[k][1], dtype=np.float64) for k in names], axis=1)  # (N, M)
    rng = np.random.default_rng(seed)
    point, boot = [], []
    for idx in groups.values():
        point.append(_ratio(num[idx].sum(0), den[idx].sum(0)))
        w = bootstrap_weights(len(idx), n_boot, rng)  # (B, n_g)
        boot.append(_ratio(w @ num[idx], w @ den[idx]))  # (B, M)
    sizes = np.array([len(i) for i in groups.values()])
    return GroupStats(
        list(groups),
        sizes,
        names,
        np.array(point).reshape(len(groups), len(names)),
        np.stack(boot, axis=1) if boot else np.zeros((n_boot, 0, len(names))),
    )


def percentile_ci(samples: np.ndarray, confidence: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along `axis`, ignoring NaN (e.g. a resample where no image had a true label)."""
    alpha = (1 - confidence) / 2
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: no resample had a denominator (interval is NaN)
        lo = np.nanquantile(samples, alpha, axis=axis, method="lower")
        hi = np.nanquantile(samples, 1 - alpha, axis=axis, method="higher")
    return lo, hi


def gap_ratio(values: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Max-min gap and max/min ratio over groups (NaN groups ignored; ratio inf when the min is 0)."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices (no eligible group in a resample)
        hi, lo = np.nanmax(values, axis=axis), np.nanmin(values, axis=axis)
        ratio = np.where(lo > 0, hi / np.where(lo > 0, lo, 1), np.where(hi > 0, np.inf, np.nan))
    return hi - lo, ratio


def _interval(lo: float, hi: float) -> list[float]:
    return [float(lo), float(hi)]


def summarise(stats: GroupStats, confidence: float, min_group_size: int) -> dict:
    """Per-group values with intervals, and per-quantity disparity over the groups with >= min_group_size images."""
    lo, hi = percentile_ci(stats.boot, confidence)  # (G, M)
    groups = {
        g: {
            "n": int(stats.sizes[i]),
            **{k: {"value": float(stats.point[i, m]), "ci": _interval(lo[i, m], hi[i, m])} for m, k in enumerate(stats.names)},
        }
        for i, g in enumerate(stats.groups)
    }
    keep = stats.sizes >= min_group_size
    disparity = {}
    for m, k in enumerate(stats.names):
        vals = stats.point[keep, m]
        if np.sum(~np.isnan(vals)) < 2:
            continue
        gap, ratio = gap_ratio(vals)
        bgap, bratio = gap_ratio(stats.boot[:, keep, m], axis=1)  # (B,)
        kept = [g for g, ok in zip(stats.groups, keep) if ok]
        disparity[k] = {
            "gap": float(gap),
            "gap_ci": _interval(*percentile_ci(bgap, confidence)),
            "ratio": float(ratio),
            "ratio_ci": _interval(*percentile_ci(bratio, confidence)),
            "max_group": kept[int(np.nanargmax(vals))],
            "min_group": kept[int(np.nanargmin(vals))],
            "groups": int(np.sum(~np.isnan(vals))),
        }
    return {"groups": groups, "disparity": disparity}


def change(stats: GroupStats, before: str, after: str, confidence: float) -> dict:
    """Per group: `after - before` of two quantities measured on the same images (paired bootstrap interval)."""
    a, b = stats.names.index(before), stats.names.index(after)
    delta = stats.point[:, b] - stats.point[:, a]  # (G,)
    lo, hi = percentile_ci(stats.boot[:, :, b] - stats.boot[:, :, a], confidence)
    return {
        g: {
            "before": float(stats.point[i, a]),
            "after": float(stats.point[i, b]),
            "delta": float(delta[i]),
            "ci": _interval(lo[i], hi[i]),
        }
        for i, g in enumerate(stats.groups)
    }
