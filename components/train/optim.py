"""AdamW with open_clip's weight-decay exclusions, and a linear-warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

_NO_DECAY_SUBSTRINGS = ("bn", "ln", "bias", "logit_scale", "embedding")


def exclude_from_decay(name: str, param: torch.Tensor) -> bool:
    """open_clip's rule: gains, biases, norms, embeddings and logit_scale get no weight decay."""
    return param.ndim < 2 or any(s in name for s in _NO_DECAY_SUBSTRINGS)


def param_groups(model: nn.Module, wd: float) -> list[dict]:
    """Two AdamW groups: decayed matrices, and everything `exclude_from_decay` names (wd 0); locked (frozen) params in none."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if exclude_from_decay(name, p) else decay).append(p)
    groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": wd}]
    return [g for g in groups if g["params"]]  # a locked tower can leave one empty (DeepSpeed rejects empty groups)


def build_optimizer(model: nn.Module, lr: float, wd: float, betas: tuple[float, float], eps: float) -> torch.optim.Optimizer:
    """AdamW over `param_groups`; fused kernels on CUDA, foreach (multi-tensor) on CPU."""
    on_cuda = next(model.parameters()).is_cuda
    kwargs = {"fused": True} if on_cuda else {"foreach": True}
    return torch.optim.AdamW(param_groups(model, wd), lr=lr, betas=betas, eps=eps, **kwargs)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Multiplier of the base lr at `step` (0-based): linear warm-up to 1, then cosine to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR around `lr_factor`; call `.step()` once per optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total))
