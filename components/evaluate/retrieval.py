"""Zero-shot retrieval: image->text and text->image recall@k with several captions per image.

CLIP_benchmark semantics (parity-tested): a query counts as a hit when at least one of its positives
is in the top k. Names follow CLIP_benchmark: `image_retrieval_recall@k` is text->image,
`text_retrieval_recall@k` is image->text. k is clipped to the gallery size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def flatten_captions(captions: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """All captions in order, and for each the index of its image."""
    texts = [t for caps in captions for t in caps]
    owner = np.array([i for i, caps in enumerate(captions) for _ in caps], dtype=np.int64)
    return texts, owner


def _hits_at_k(scores: torch.Tensor, positives: torch.Tensor, k: int) -> torch.Tensor:
    """(Q, G) scores, (Q, G) bool positives -> (Q,) bool: a positive among each query's top k."""
    topk = scores.topk(min(k, scores.shape[1]), dim=1)[1]  # (Q, k)
    return positives.gather(1, topk).any(dim=1)


def retrieval_metrics(
    image_features: np.ndarray | torch.Tensor,
    text_features: np.ndarray | torch.Tensor,
    text_owner: np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Recall@k both ways from normalised (N_img, D) and (N_txt, D) features; text i describes image text_owner[i]."""
    img = torch.as_tensor(image_features, dtype=torch.float32)
    txt = torch.as_tensor(text_features, dtype=torch.float32)
    scores = txt @ img.T  # (N_txt, N_img)
    positives = torch.zeros_like(scores, dtype=torch.bool)
    positives[torch.arange(len(txt)), torch.as_tensor(text_owner)] = True
    metrics = {}
    for k in ks:
        metrics[f"image_retrieval_recall@{k}"] = _hits_at_k(scores, positives, k).float().mean().item()
        metrics[f"text_retrieval_recall@{k}"] = _hits_at_k(scores.T, positives.T, k).float().mean().item()
    return metrics
