"""The stratified bootstrap: exact resampling weights, and interval coverage in a Bernoulli simulation."""

from __future__ import annotations

import numpy as np

from components.bias.metrics import bootstrap_weights, gap_ratio, group_stats, percentile_ci


def test_weights_are_resample_counts():
    w = bootstrap_weights(7, 50, np.random.default_rng(0))
    assert w.shape == (50, 7) and (w.sum(1) == 7).all() and (w >= 0).all()


def test_gap_ratio():
    gap, ratio = gap_ratio(np.array([0.1, 0.3, np.nan, 0.2]))
    assert np.isclose(gap, 0.2) and np.isclose(ratio, 3.0)
    assert np.isinf(gap_ratio(np.array([0.0, 0.2]))[1])


def test_intervals_cover_the_true_rates_and_gap():
    """~95% intervals: group rates and the max-min gap cover the truth in >= 90% of 200 simulated studies."""
    p, n, reps, b = np.array([0.3, 0.1]), 200, 200, 400
    rng = np.random.default_rng(123)
    groups = {"A": np.arange(n), "B": np.arange(n, 2 * n)}
    hit_rate = hit_gap = hit_ratio = 0
    for r in range(reps):
        x = np.concatenate([rng.random(n) < p[0], rng.random(n) < p[1]]).astype(float)
        s = group_stats({"flag": (x, np.ones(2 * n))}, groups, b, [7, r])
        lo, hi = percentile_ci(s.boot[:, 0, 0], 0.95)
        hit_rate += lo <= p[0] <= hi
        gap, ratio = gap_ratio(s.boot[:, :, 0], axis=1)
        glo, ghi = percentile_ci(gap, 0.95)
        hit_gap += glo <= 0.2 <= ghi
        rlo, rhi = percentile_ci(ratio, 0.95)
        hit_ratio += rlo <= 3.0 <= rhi
    assert hit_rate / reps >= 0.9
    assert hit_gap / reps >= 0.9
    assert hit_ratio / reps >= 0.9


def test_seeded():
    x = (np.arange(30) % 3 == 0).astype(float)
    g = {"a": np.arange(15), "b": np.arange(15, 30)}
    s1 = group_stats({"q": (x, np.ones(30))}, g, 100, [0, 1])
    s2 = group_stats({"q": (x, np.ones(30))}, g, 100, [0, 1])
    assert np.array_equal(s1.boot, s2.boot)
