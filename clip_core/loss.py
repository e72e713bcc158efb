"""Contrastive losses: CLIP's symmetric cross-entropy and SigLIP's sigmoid loss, both rank-aware.

Features are gathered across ranks with `torch.distributed.nn.all_gather`, whose backward
routes each rank's slice of the gradient home, so every rank's loss sees the whole global batch
and gradients equal those of one process holding the concatenated batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_features(features: torch.Tensor, rank: int, world_size: int, gather_with_grad: bool = False) -> torch.Tensor:
    """(B, D) per rank -> (world*B, D). Without `gather_with_grad`, only the local slice carries grad."""
    if world_size == 1:
        return features
    if gather_with_grad:
        # `import torch.distributed.nn` here would make `torch` a local name of this function and break
        # the branch below (UnboundLocalError) whenever gather_with_grad is False
        from torch.distributed import nn as dist_nn

        return torch.cat(dist_nn.all_gather(features), dim=0)
    gathered = [torch.zeros_like(features) for _ in range(world_size)]
    dist.all_gather(gathered, features)
    gathered[rank] = features
    return torch.cat(gathered, dim=0)


class ClipLoss(nn.Module):
    """Symmetric InfoNCE over scaled cosine similarities (open_clip `ClipLoss` semantics).

    `local_loss=True` computes only this rank's rows of the global logit matrix (memory O(B*N)
    instead of O(N^2)); with `gather_with_grad=True` the gradients are exact across ranks.
    """

    def __init__(self, local_loss: bool = False, gather_with_grad: bool = False):
        super().__init__()
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
        rank, world = _world()
        all_img = gather_features(image_features, rank, world, self.gather_with_grad)  # (N, D)
        all_txt = gather_features(text_features, rank, world, self.gather_with_grad)  # (N, D)
        if self.local_loss:
            logits_per_image = logit_scale * image_features @ all_txt.T  # (B, N)
            logits_per_text = logit_scale * text_features @ all_img.T  # (B, N)
            labels = torch.arange(image_features.shape[0], device=image_features.device)
            labels = labels + rank * image_features.shape[0]
        else:
            logits_per_image = logit_scale * all_img @ all_txt.T  # (N, N)
            logits_per_text = logits_per_image.T
            labels = torch.arange(all_img.shape[0], device=image_features.device)
        return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


class SigLipLoss(nn.Module):
    """Pairwise sigmoid loss (Zhai et al. 2023): -mean over images of sum_j log sigmoid(z_ij * logit_ij).

    Each rank scores its own images against every rank's texts (gathered with gradient), which is
    the same sum open_clip computes by passing text features around the ring.
    """

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        logit_bias: torch.Tensor,
    ) -> torch.Tensor:
        rank, world = _world()
        all_txt = gather_features(text_features, rank, world, gather_with_grad=True)  # (N, D)
        logits = logit_scale * image_features @ all_txt.T + logit_bias  # (B, N)
        B = image_features.shape[0]
        labels = -torch.ones_like(logits)
        labels[:, rank * B : (rank + 1) * B] += 2 * torch.eye(B, device=logits.device, dtype=logits.dtype)
        return -F.logsigmoid(labels * logits).sum() / B
