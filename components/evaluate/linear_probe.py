"""Linear probe on frozen features: L2 logistic regression, C chosen on a validation split, refit, test.

Protocol of the CLIP paper (A.3) / CLIP_benchmark: a log-spaced sweep of the regularisation
strength, coarse points first and then a halving search around the peak, scored by validation
top-1; then refit on train+validation (few-shot: on the k-shot set only). Two backends solve the
same objective, sklearn's `C * sum(CE) + 0.5 * ||W||^2` (bias unpenalised, binary problems with
one weight vector as sklearn does): scikit-learn L-BFGS on CPU, and torch L-BFGS (float64) that
also runs on a GPU; they agree within tolerance (tested).
"""

# ruff: noqa: N803  (X, C: the usual math names of features and inverse regularisation)

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .dataset import stratified_split
from .zeroshot import classification_metrics, topk_accuracy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinearModel:
    """Weights over the classes seen in training: logits = X @ W.T + b (binary: class 1 vs 0 = 0)."""

    W: np.ndarray  # (K', D), K' = 1 for two classes else K
    b: np.ndarray  # (K',)
    classes: np.ndarray  # (K,) the original labels
    converged: bool = True  # False: the solver stopped at max_iter (the result says so; nothing is hidden)

    def logits(self, X: np.ndarray, num_classes: int) -> torch.Tensor:
        """(N, num_classes) float32 logits; classes unseen in training get -inf."""
        z = torch.as_tensor(X, dtype=torch.float64) @ torch.as_tensor(self.W).T + torch.as_tensor(self.b)  # (N, K')
        if len(self.classes) == 2:
            z = torch.cat([torch.zeros_like(z), z], dim=1)
        out = torch.full((len(X), num_classes), float("-inf"), dtype=torch.float64)
        out[:, torch.as_tensor(self.classes)] = z
        return out.float()


def fit_sklearn(X: np.ndarray, y: np.ndarray, C: float, max_iter: int = 1000, tol: float = 1e-8) -> LinearModel:
    """scikit-learn LogisticRegression (lbfgs, L2)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, max_iter=max_iter, tol=tol)
    with warnings.catch_warnings(record=True) as caught:  # recorded, not printed: `converged` carries it
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(X, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return LinearModel(clf.coef_.astype(np.float64), clf.intercept_.astype(np.float64), clf.classes_, converged)


def fit_torch(
    X: np.ndarray, y: np.ndarray, C: float, max_iter: int = 1000, tol: float = 1e-10, device: str = "cpu"
) -> LinearModel:
    """The same objective with torch.optim.LBFGS (strong Wolfe line search, float64), on `device`."""
    classes, yi = np.unique(y, return_inverse=True)
    K, (n, d) = len(classes), X.shape
    k_out = 1 if K == 2 else K
    Xt = torch.as_tensor(X, dtype=torch.float64, device=device)
    yt = torch.as_tensor(yi, device=device)
    W = torch.zeros(k_out, d, dtype=torch.float64, device=device, requires_grad=True)
    b = torch.zeros(k_out, dtype=torch.float64, device=device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [W, b],
        lr=1,
        max_iter=max_iter,
        tolerance_grad=tol,
        tolerance_change=1e-14,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        z = Xt @ W.T + b  # (n, K')
        if k_out == 1:
            z = torch.cat([torch.zeros_like(z), z], dim=1)
        # sklearn's objective divided by C*n: keeps the scale near 1 whatever C is
        loss = torch.nn.functional.cross_entropy(z, yt) + (W * W).sum() / (2 * C * n)
        loss.backward()
        return loss

    opt.step(closure)
    # LBFGS keeps its counters on the first parameter; it also stops at max_eval (1.25 x max_iter) evaluations
    state = opt.state[opt.param_groups[0]["params"][0]]
    converged = state["n_iter"] < max_iter and state["func_evals"] < opt.param_groups[0]["max_eval"]
    return LinearModel(W.detach().cpu().numpy(), b.detach().cpu().numpy(), classes, bool(converged))


def get_fitter(backend: str, max_iter: int, device: str = "cpu") -> Callable[[np.ndarray, np.ndarray, float], LinearModel]:
    """fit(X, y, C) for "sklearn" or "torch"."""
    if backend == "sklearn":
        return lambda X, y, C: fit_sklearn(X, y, C, max_iter)
    if backend == "torch":
        return lambda X, y, C: fit_torch(X, y, C, max_iter, device=device)
    raise ValueError(f"probe backend {backend!r}: choose sklearn or torch")


def c_grid(c_min: float, c_max: float, steps: int) -> np.ndarray:
    """Log-spaced candidate values of C."""
    return np.logspace(np.log10(c_min), np.log10(c_max), steps)


def search_peak(grid: Sequence[float], score: Callable[[float], float], init_steps: int) -> tuple[int, dict[int, float]]:
    """CLIP_benchmark's sweep: score `init_steps` evenly spaced grid points, then halve a step around the best.

    Ties keep the earlier (smaller) index, as CLIP_benchmark does. Returns (best index, {index: score}).
    """
    scores: dict[int, float] = {}

    def peak(idxs: Sequence[int]) -> int:
        best, best_score = idxs[0], float("-inf")
        for i in idxs:
            if i not in scores:
                scores[i] = score(grid[i])
            if scores[i] > best_score:
                best, best_score = i, scores[i]
        return best

    gap = (len(grid) - 1) // (init_steps - 1)
    best = peak(list(range(0, len(grid), gap)))
    span = gap // 2
    while span > 0:
        best = peak([max(best - span, 0), best, min(best + span, len(grid) - 1)])
        span //= 2
    return best, scores


@dataclass(frozen=True)
class LinearProbeResult:
    """Test metrics with the chosen C, and the validation sweep ({C: val top-1})."""

    metrics: dict[str, float]
    sweep: dict[float, float] = field(default_factory=dict)
    model: LinearModel | None = None


def _choose_c(fit, X_tr, y_tr, X_val, y_val, num_classes, grid, init_steps) -> tuple[float, dict[float, float]]:
    def val_acc(C: float) -> float:
        logits = fit(X_tr, y_tr, C).logits(X_val, num_classes)
        return topk_accuracy(logits, torch.as_tensor(y_val), (1,))[0]

    best, scores = search_peak(grid, val_acc, init_steps)
    return float(grid[best]), {float(grid[i]): s for i, s in sorted(scores.items())}


def linear_probe(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    num_classes: int,
    backend: str = "sklearn",
    val_fraction: float = 0.2,
    c_min: float = 1e-6,
    c_max: float = 1e6,
    c_steps: int = 97,
    c_init_steps: int = 7,
    max_iter: int = 1000,
    seed: int = 0,
    device: str = "cpu",
) -> LinearProbeResult:
    """Carve validation from train, sweep C on it, refit on train+val, report test metrics."""
    fit = get_fitter(backend, max_iter, device)
    val_idx, tr_idx = stratified_split(y_train, val_fraction, seed)
    grid = c_grid(c_min, c_max, c_steps)
    C, sweep = _choose_c(
        fit, X_train[tr_idx], y_train[tr_idx], X_train[val_idx], y_train[val_idx], num_classes, grid, c_init_steps
    )
    model = fit(X_train, y_train, C)
    metrics = classification_metrics(model.logits(X_test, num_classes), y_test)
    out = {f"lp_{k}": v for k, v in metrics.items()}
    out.update(C=C, n_train=len(tr_idx), n_val=len(val_idx), n_test=len(y_test), converged=float(model.converged))
    if not model.converged:
        log.warning("linear probe: the final fit (C=%g) stopped at max_iter=%d without converging", C, max_iter)
    return LinearProbeResult(out, sweep, model)


def sample_k_per_class(y: np.ndarray, k: int, seed: int) -> np.ndarray | None:
    """Sorted indices of k examples of every class in `y`, or None when a class has fewer than k."""
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < k:
            return None
        picks.append(rng.choice(idx, size=k, replace=False))
    return np.sort(np.concatenate(picks))


def fewshot_curve(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    num_classes: int,
    ks: Sequence[int],
    backend: str = "sklearn",
    val_fraction: float = 0.2,
    c_min: float = 1e-6,
    c_max: float = 1e6,
    c_steps: int = 97,
    c_init_steps: int = 7,
    max_iter: int = 1000,
    seed: int = 0,
    device: str = "cpu",
) -> list[dict[str, float]]:
    """Test top-1 with k training examples per class, for each k the data allows (C swept on the same val split)."""
    fit = get_fitter(backend, max_iter, device)
    val_idx, pool_idx = stratified_split(y_train, val_fraction, seed)
    grid = c_grid(c_min, c_max, c_steps)
    rows = []
    for k in ks:
        pick = sample_k_per_class(y_train[pool_idx], k, seed + k)
        if pick is None:
            continue
        shot = pool_idx[pick]
        C, _ = _choose_c(fit, X_train[shot], y_train[shot], X_train[val_idx], y_train[val_idx], num_classes, grid, c_init_steps)
        m = classification_metrics(fit(X_train[shot], y_train[shot], C).logits(X_test, num_classes), y_test)
        rows.append({"k": k, "C": C, "lp_acc1": m["acc1"], "lp_mean_per_class_recall": m["mean_per_class_recall"]})
    return rows


def plot_fewshot(rows: list[dict[str, float]], zeroshot_acc1: float | None, path, title: str = "") -> None:
    """Few-shot linear-probe top-1 against k (log2 axis), zero-shot as a horizontal line (the paper's Fig. 6)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    if rows:
        ax.plot([r["k"] for r in rows], [r["lp_acc1"] for r in rows], "o-", label="linear probe")
        ax.set_xscale("log", base=2)
    if zeroshot_acc1 is not None:
        ax.axhline(zeroshot_acc1, color="C1", ls="--", label="zero-shot")
    ax.set_xlabel("examples per class")
    ax.set_ylabel("top-1")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
