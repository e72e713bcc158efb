"""Linear probe: the sweep's search pattern, sklearn and torch L-BFGS agreeing, separable data, few-shot."""

import numpy as np
import pytest

from components.evaluate.linear_probe import (
    c_grid,
    fewshot_curve,
    fit_sklearn,
    fit_torch,
    linear_probe,
    sample_k_per_class,
    search_peak,
)


def _blobs(n_per_class: int, k: int, d: int = 12, sep: float = 2.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per_class)
    X = rng.normal(size=(len(y), d)) + sep * np.eye(d)[y % d]
    return X, y


def test_search_peak_is_clip_benchmarks_pattern() -> None:
    grid = list(range(97))
    seen = []

    def score(c):
        seen.append(c)
        return -abs(c - 37)

    best, scores = search_peak(grid, score, 7)
    assert best == 37
    assert seen[:7] == [0, 16, 32, 48, 64, 80, 96]  # coarse points of logspace(.., 97) vs 7
    assert len(seen) == len(scores) <= 7 + 2 * 4  # each refinement adds at most 2 new points


def test_search_peak_ties_keep_the_first() -> None:
    best, _ = search_peak(np.arange(9), lambda c: 1.0, 3)
    assert best == 0


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("c", [1e-3, 1.0, 1e2])
def test_sklearn_and_torch_solve_the_same_objective(k: int, c: float) -> None:
    X, y = _blobs(30, k, seed=k)
    Xt, _ = _blobs(10, k, seed=99)
    a, b = fit_sklearn(X, y, c), fit_torch(X, y, c)
    pa, pb = a.logits(Xt, k).softmax(1), b.logits(Xt, k).softmax(1)
    assert (pa.argmax(1) == pb.argmax(1)).all()
    assert np.abs((pa - pb).numpy()).max() < 1e-4


def test_linear_probe_backends_agree_and_separable_data_is_solved() -> None:
    X, y = _blobs(20, 4, sep=6.0)
    Xt, yt = _blobs(10, 4, sep=6.0, seed=1)
    kw = dict(c_steps=7, c_init_steps=4, c_min=1e-3, c_max=1e3)
    sk = linear_probe(X, y, Xt, yt, 4, backend="sklearn", **kw)
    th = linear_probe(X, y, Xt, yt, 4, backend="torch", **kw)
    assert sk.metrics["lp_acc1"] == th.metrics["lp_acc1"] == 1.0
    assert sk.metrics["C"] == th.metrics["C"]
    assert sk.sweep == th.sweep
    assert sk.metrics["n_train"] + sk.metrics["n_val"] == len(y)


def test_classes_missing_from_training_are_never_predicted() -> None:
    X, y = _blobs(10, 3)
    m = fit_sklearn(X[y < 2], y[y < 2], 1.0)
    assert m.logits(X, 3).argmax(1).max().item() <= 1


def test_fewshot_curve_and_sampling() -> None:
    X, y = _blobs(12, 3, sep=5.0)
    Xt, yt = _blobs(5, 3, sep=5.0, seed=1)
    pick = sample_k_per_class(y, 4, seed=0)
    assert np.bincount(y[pick]).tolist() == [4, 4, 4]
    assert sample_k_per_class(y, 13, seed=0) is None
    rows = fewshot_curve(X, y, Xt, yt, 3, ks=(1, 4, 50), c_steps=5, c_init_steps=3)
    assert [r["k"] for r in rows] == [1, 4]  # 50 per class is more than the data has
    assert all(0.0 <= r["lp_acc1"] <= 1.0 for r in rows)


def test_c_grid_matches_the_paper_range() -> None:
    g = c_grid(1e-6, 1e6, 97)
    assert g[0] == pytest.approx(1e-6) and g[-1] == pytest.approx(1e6) and g[48] == pytest.approx(1.0)


@pytest.mark.parametrize("backend", ["sklearn", "torch"])
def test_a_fit_that_stops_at_max_iter_says_so(backend: str) -> None:
    """Non-convergence is part of the result (`converged`), not a hidden warning."""
    from components.evaluate.linear_probe import get_fitter

    X, y = _blobs(30, 4, sep=0.3, seed=5)
    assert not get_fitter(backend, max_iter=2)(X, y, 1e4).converged
    assert get_fitter(backend, max_iter=1000)(X, y, 1.0).converged
    Xt, yt = _blobs(10, 4, seed=6)
    out = linear_probe(X, y, Xt, yt, 4, backend=backend, max_iter=2, c_steps=3, c_init_steps=3)
    assert out.metrics["converged"] == 0.0
