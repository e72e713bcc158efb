"""Robustness to distribution shift: zero-shot and linear-probe accuracy on a dataset and its shifted variants.

The paper (Sec. 3.3, after Taori et al.) asks how much accuracy a classifier keeps under shift,
compared with a supervised classifier of the same in-distribution accuracy. Taori et al.'s
baseline is a logit-linear fit over many ImageNet models; with one model here, the reference is
the linear probe on the same features (the paper's "adapt to ImageNet" comparison) with a slope-1
trend in logit space: baseline(x) = sigmoid(logit(x) + logit(lp_shift) - logit(lp_base)).
Effective robustness of zero-shot = zs_shift - baseline(zs_base): > 0 means zero-shot keeps more
accuracy under this shift than the probe trend predicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

_EPS = 1e-4


def _logit(p: float) -> float:
    p = float(np.clip(p, _EPS, 1 - _EPS))
    return float(np.log(p / (1 - p)))


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


@dataclass(frozen=True)
class ShiftAccuracy:
    """Top-1 of both classifiers on one dataset (base or shifted)."""

    dataset: str
    zeroshot_acc1: float
    linear_probe_acc1: float | None = None


def effective_robustness(base: ShiftAccuracy, shifted: ShiftAccuracy) -> dict[str, float | None]:
    """Accuracy kept under shift for each classifier and zero-shot's effective robustness (see module doc)."""
    row: dict[str, float | None] = {
        "zeroshot_acc1": shifted.zeroshot_acc1,
        "zeroshot_retained": shifted.zeroshot_acc1 / base.zeroshot_acc1 if base.zeroshot_acc1 > 0 else None,
        "zeroshot_drop": base.zeroshot_acc1 - shifted.zeroshot_acc1,
        "linear_probe_acc1": shifted.linear_probe_acc1,
        "linear_probe_retained": None,
        "linear_probe_drop": None,
        "effective_robustness": None,
    }
    if base.linear_probe_acc1 is not None and shifted.linear_probe_acc1 is not None:
        row["linear_probe_drop"] = base.linear_probe_acc1 - shifted.linear_probe_acc1
        if base.linear_probe_acc1 > 0:
            row["linear_probe_retained"] = shifted.linear_probe_acc1 / base.linear_probe_acc1
        offset = _logit(shifted.linear_probe_acc1) - _logit(base.linear_probe_acc1)
        row["effective_robustness"] = shifted.zeroshot_acc1 - _sigmoid(_logit(base.zeroshot_acc1) + offset)
    return row


def plot_robustness(base: ShiftAccuracy, shifted: list[ShiftAccuracy], path: str | Path) -> Path:
    """Shifted vs base top-1 per classifier, with y = x (perfect robustness), as in the paper's Fig. 13."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="y = x (no drop)")
    for s in shifted:
        ax.scatter(base.zeroshot_acc1, s.zeroshot_acc1, marker="o", color="C1")
        ax.annotate(s.dataset, (base.zeroshot_acc1, s.zeroshot_acc1), fontsize=7)
        if base.linear_probe_acc1 is not None and s.linear_probe_acc1 is not None:
            ax.scatter(base.linear_probe_acc1, s.linear_probe_acc1, marker="s", color="C0")
            ax.annotate(s.dataset, (base.linear_probe_acc1, s.linear_probe_acc1), fontsize=7)
    ax.scatter([], [], marker="o", color="C1", label="zero-shot")
    ax.scatter([], [], marker="s", color="C0", label="linear probe")
    ax.set_xlabel(f"top-1 on {base.dataset}")
    ax.set_ylabel("top-1 on shifted set")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"robustness to shifts of {base.dataset}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
