"""The paper's Section 5 statistics for one split: accuracies, one-sided binomial test, Clopper-Pearson, Bonferroni."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import binomtest
from statsmodels.stats.proportion import proportion_confint


@dataclass(frozen=True)
class SplitStats:
    """Zero-shot accuracy on All / Clean / Overlap and the test of Overlap against Clean."""

    n_all: int
    n_clean: int
    n_overlap: int
    correct_clean: int
    correct_overlap: int
    acc_all: float | None
    acc_clean: float | None
    acc_overlap: float | None
    all_minus_clean: float | None
    p_value: float | None  # one-sided: is Overlap accuracy greater than Clean accuracy?
    ci_low: float | None  # Clopper-Pearson on Overlap accuracy
    ci_high: float | None


def _acc(k: int, n: int) -> float | None:
    return k / n if n else None


def split_stats(correct: Sequence[bool], overlap: Sequence[bool], confidence: float = 0.995) -> SplitStats:
    """Statistics of one dataset from per-sample correctness and overlap flags (same order)."""
    if len(correct) != len(overlap):
        raise ValueError(f"{len(correct)} predictions but {len(overlap)} overlap flags")
    n_all = len(correct)
    n_overlap = int(sum(bool(o) for o in overlap))
    k_overlap = int(sum(bool(c) and bool(o) for c, o in zip(correct, overlap)))
    k_all = int(sum(bool(c) for c in correct))
    n_clean, k_clean = n_all - n_overlap, k_all - k_overlap
    acc_all, acc_clean, acc_overlap = _acc(k_all, n_all), _acc(k_clean, n_clean), _acc(k_overlap, n_overlap)
    p = lo = hi = None
    if n_overlap and acc_clean is not None:
        p = float(binomtest(k_overlap, n_overlap, acc_clean, alternative="greater").pvalue)
    if n_overlap:
        lo, hi = (float(v) for v in proportion_confint(k_overlap, n_overlap, alpha=1 - confidence, method="beta"))
    diff = acc_all - acc_clean if acc_all is not None and acc_clean is not None else None
    return SplitStats(n_all, n_clean, n_overlap, k_clean, k_overlap, acc_all, acc_clean, acc_overlap, diff, p, lo, hi)


def bonferroni(p_values: Sequence[float | None], alpha: float) -> list[bool | None]:
    """Significant after Bonferroni over the tests actually run (None p-values are not tests)."""
    m = sum(p is not None for p in p_values)
    return [None if p is None else bool(p < alpha / m) for p in p_values]
