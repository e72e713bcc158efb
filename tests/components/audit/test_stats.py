"""Known-answer tests of the overlap statistics: binomial test, Clopper-Pearson, Bonferroni."""

from __future__ import annotations

import pytest
from scipy.stats import beta

from components.audit.stats import bonferroni, split_stats


def test_binomial_and_clopper_pearson_match_hand_computation() -> None:
    # Clean: 5 of 10 right (p = 0.5); Overlap: 9 of 10 right
    correct = [True] * 5 + [False] * 5 + [True] * 9 + [False]
    overlap = [False] * 10 + [True] * 10
    s = split_stats(correct, overlap, confidence=0.995)
    assert (s.n_all, s.n_clean, s.n_overlap) == (20, 10, 10)
    assert s.acc_clean == 0.5 and s.acc_overlap == 0.9 and s.acc_all == 14 / 20
    assert s.all_minus_clean == pytest.approx(0.2)
    # P(X >= 9 | n=10, p=0.5) = (C(10,9) + C(10,10)) / 2^10 = 11/1024
    assert s.p_value == pytest.approx(11 / 1024)
    a = 0.005
    assert s.ci_low == pytest.approx(beta.ppf(a / 2, 9, 2))  # Clopper-Pearson: Beta(k, n-k+1) lower quantile
    assert s.ci_high == pytest.approx(beta.ppf(1 - a / 2, 10, 1))  # and Beta(k+1, n-k) upper quantile
    assert s.ci_high == pytest.approx((1 - a / 2) ** (1 / 10))  # Beta(10, 1) has cdf x^10


def test_no_overlap_has_no_test() -> None:
    s = split_stats([True, False, True], [False, False, False])
    assert s.n_overlap == 0 and s.p_value is None and s.ci_low is None and s.all_minus_clean == 0.0


def test_bonferroni_divides_alpha_by_tests_run() -> None:
    # 4 tests at alpha 0.05 -> each needs p < 0.05 / 4 = 0.0125; None is not a test
    assert bonferroni([0.01, 0.02, None, 0.001, 0.3], 0.05) == [True, False, None, True, False]
    assert bonferroni([0.04], 0.05) == [True]
