"""Zero-shot classification: prompt-ensembled class embeddings, 100 * cosine logits, top-k and per-class recall.

Same protocol and metric definitions as CLIP_benchmark's `zeroshot_classification` (parity-tested),
but it reads image features from the shared embedding cache instead of re-encoding per task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, confusion_matrix

from .cache import encode_texts


def build_classifier(
    model: torch.nn.Module, tokenizer: Callable, classnames: Sequence[str], templates: Sequence[str], precision: str = "fp32"
) -> torch.Tensor:
    """(D, C) zero-shot weights: each prompt embedding normalised, averaged per class, re-normalised."""
    text = encode_texts(model, tokenizer, prompts(classnames, templates), precision=precision)  # (C*T, D), normalised
    return classifier_from_prompt_features(text, len(classnames), len(templates))


def prompts(classnames: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Class-major prompt list: every template for class 0, then class 1, ..."""
    return [t.format(c=c) for c in classnames for t in templates]


def classifier_from_prompt_features(text: torch.Tensor, n_classes: int, n_templates: int) -> torch.Tensor:
    """(C*T, D) normalised prompt features (class-major) -> (D, C): averaged per class, re-normalised."""
    per_class = torch.as_tensor(text).view(n_classes, n_templates, -1).mean(dim=1)  # (C, D)
    return F.normalize(per_class, dim=-1).T.contiguous()  # (D, C)


def zeroshot_logits(image_features: np.ndarray | torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """(N, D) normalised image features @ (D, C) classifier, scaled by 100 as in CLIP -> (N, C)."""
    feats = torch.as_tensor(image_features, dtype=torch.float32)
    return 100.0 * feats @ classifier.float()


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int]) -> list[float]:
    """Share of rows whose label is among the k highest logits, for each k (k clipped to the class count)."""
    ks = [min(k, logits.shape[1]) for k in ks]
    pred = logits.topk(max(ks), 1, True, True)[1].t()  # (K, N)
    correct = pred.eq(labels.view(1, -1).expand_as(pred))
    n = len(labels)
    return [correct[:k].reshape(-1).float().sum().item() / n for k in ks]


def classification_metrics(logits: torch.Tensor, labels: np.ndarray | torch.Tensor) -> dict[str, float]:
    """acc1, acc5 (top-5 clipped to the class count; CLIP_benchmark reports NaN below 5 classes), mean per-class recall."""
    labels = torch.as_tensor(np.array(labels), dtype=torch.long)
    acc1, acc5 = topk_accuracy(logits, labels, (1, 5))
    pred = logits.argmax(dim=1)
    return {"acc1": acc1, "acc5": acc5, "mean_per_class_recall": float(balanced_accuracy_score(labels.numpy(), pred.numpy()))}


def average_precision_per_class(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(C,) average precision of each class from (N, C) scores and (N, C) multi-hot targets.

    CLIP_benchmark's definition (from torchnet's APMeter): precision at each positive's rank, averaged
    over the class's positives (0 for a class with none); ties broken by torch.sort's order.
    """
    scores, targets = torch.as_tensor(scores).float(), torch.as_tensor(targets)
    ranks = torch.arange(1, scores.shape[0] + 1).float()
    ap = torch.zeros(scores.shape[1])
    for k in range(scores.shape[1]):
        truth = targets[torch.sort(scores[:, k], 0, True)[1], k]
        precision = truth.float().cumsum(0) / ranks
        ap[k] = precision[truth.bool()].sum() / max(float(truth.sum()), 1)
    return ap


def multilabel_metrics(logits: torch.Tensor, targets: np.ndarray | torch.Tensor) -> dict[str, float]:
    """mean_average_precision: the mean over classes of `average_precision_per_class` (CLIP_benchmark's multilabel metric)."""
    return {"mean_average_precision": average_precision_per_class(logits, torch.as_tensor(np.asarray(targets))).mean().item()}


@dataclass(frozen=True)
class ZeroShotResult:
    """Metrics plus the (N, C) logits and the (C, C) confusion matrix (rows: true class)."""

    metrics: dict[str, float]
    logits: torch.Tensor
    confusion: np.ndarray


def evaluate_zeroshot(image_features: np.ndarray, labels: np.ndarray, classifier: torch.Tensor) -> ZeroShotResult:
    """Zero-shot classification of cached features with a prebuilt classifier."""
    logits = zeroshot_logits(image_features, classifier)
    n_classes = classifier.shape[1]
    cm = confusion_matrix(labels, logits.argmax(dim=1).numpy(), labels=np.arange(n_classes))
    return ZeroShotResult(classification_metrics(logits, labels), logits, cm)


def plot_confusion(confusion: np.ndarray, classnames: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix as a PNG (class names on the axes up to 40 classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = confusion.sum(axis=1, keepdims=True)
    norm = np.divide(confusion, rows, out=np.zeros_like(confusion, dtype=float), where=rows > 0)
    n = len(classnames)
    size = min(4 + 0.3 * n, 16)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if n <= 40:
        ax.set_xticks(range(n), classnames, rotation=90, fontsize=7)
        ax.set_yticks(range(n), classnames, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
