"""Gradient accumulation over micro-batches: contrastive (one loss over the whole accumulated batch) or plain averaging.

A contrastive loss is not a mean of per-sample terms: every sample's negatives are the other samples of
the batch. Averaging k micro-batch losses therefore trains a batch of `batch * workers` negatives, whatever
k is. `contrastive` mode (open_clip's `--accum-freq`) does what a k-times larger batch does, within the
memory of one micro-batch plus the cached features:

1. a no-grad forward of every micro-batch caches its features (B, D) per tower;
2. for each micro-batch j: a forward with grad, its fresh features substituted into the cached ones, the
   loss over all k*B rows (gathered across workers as usual) and a backward. Each backward yields the
   part of the full gradient that flows through micro-batch j; their sum is the large batch's gradient.

Unlike open_clip, the logit scale (and SigLIP's bias) carries grad in one re-run only, so its gradient
is not counted k times; and each re-run replays the RNG state of its cached forward, so random layers
(patch dropout) see the same draws in both passes and the substituted features equal the cached ones.
Cost: one extra forward per micro-batch. Exact for ViT towers; a ResNet tower with BatchNorm in training mode
normalises each micro-batch with its own statistics (and updates the running statistics in both passes, as
open_clip does), so there it is close to, not equal to, the larger batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch

Batch = tuple[torch.Tensor, torch.Tensor]  # (images (B, 3, H, W), tokens (B, L))
Forward = Callable[[torch.Tensor, torch.Tensor], tuple]  # -> (image_features, text_features, scale[, bias])
Backward = Callable[[int, torch.Tensor], None]  # (micro-batch index, loss) -> None
LossFn = Callable[..., torch.Tensor]
Sync = Callable[[int], contextlib.AbstractContextManager]  # micro-batch index -> context around its forward+backward


def _always(j: int) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


def _rng_state(device: torch.device) -> tuple:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(state: tuple, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def accumulate_contrastive(
    forward: Forward, backward: Backward, batches: Sequence[Batch], loss_fn: LossFn, sync: Sync = _always
) -> torch.Tensor:
    """Cached-feature accumulation (see the module docstring); returns the loss of the whole accumulated batch.

    `sync(j)` wraps micro-batch j's forward and backward with grad (DDP: `no_sync` on all but the last).
    """
    if len(batches) == 1:  # nothing to cache: the plain step
        with sync(0):
            loss = loss_fn(*forward(*batches[0]))
            backward(0, loss)
        return loss.detach()
    device = batches[0][0].device
    states, imgs, txts = [], [], []
    with torch.no_grad():
        for images, tokens in batches:
            states.append(_rng_state(device))
            img, txt, *_ = forward(images, tokens)
            imgs.append(img)  # (B, D)
            txts.append(txt)  # (B, D)
    after = _rng_state(device)
    last = len(batches) - 1
    for j, (images, tokens) in enumerate(batches):
        _set_rng_state(states[j], device)
        with sync(j):
            img, txt, *rest = forward(images, tokens)
            rest = rest if j == last else [r.detach() for r in rest]  # scale/bias: one gradient, not k
            loss = loss_fn(torch.cat([*imgs[:j], img, *imgs[j + 1 :]]), torch.cat([*txts[:j], txt, *txts[j + 1 :]]), *rest)
            backward(j, loss)
    _set_rng_state(after, device)
    return loss.detach()  # every re-run's loss has the value of the accumulated batch's loss


def accumulate_average(
    forward: Forward, backward: Backward, batches: Sequence[Batch], loss_fn: LossFn, sync: Sync = _always
) -> torch.Tensor:
    """Plain accumulation: the mean of the micro-batches' own losses (each sees only its micro-batch's negatives)."""
    total = torch.zeros(())
    for j, (images, tokens) in enumerate(batches):
        with sync(j):
            loss = loss_fn(*forward(images, tokens)) / len(batches)
            backward(j, loss)
        total = total + loss.detach().float().cpu()
    return total


ACCUMULATORS = {"contrastive": accumulate_contrastive, "average": accumulate_average}
