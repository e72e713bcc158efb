"""Contrastive accumulation is a larger batch: accum_steps=4 x batch 8 gives the loss and gradients of one batch of 32.

Known answers in float64 (DDP engine, 1 and 2 gloo workers) and float32 (DeepSpeed ZeRO-2/3), against the
same engine stepping the 32 samples at once; the plain `average` mode must differ (the test can fail).
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import clip_core
from components.train.config import TrainConfig
from components.train.engine import DDPEngine

K, B = 4, 8  # accum_steps x batch_size == one batch of 32
# a ViT and a text tower small enough for float64 in a unit test
MICRO = {"embed_dim": 16, "vision_cfg": {"image_size": 16, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
         "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 2}}  # fmt: skip


def _model() -> clip_core.CLIP:
    torch.manual_seed(0)
    return clip_core.create_model("tiny", **MICRO)


def _data(n: int, seed: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 16, 16, generator=g, dtype=dtype)
    tokens = torch.randint(1, 60, (n, 8), generator=g)
    tokens[:, 5] = 63  # EOT: the highest id, where the text tower pools
    return images, tokens


def _loss_fn():
    clip = clip_core.ClipLoss()
    return lambda img, txt, scale, *_: clip(img, txt, scale)


def _grads(mode: str, accum: int, images, tokens) -> tuple[float, dict[str, torch.Tensor]]:
    """(loss, grads) of one accumulation window of `accum` micro-batches over `images` (float64, DDP engine)."""
    cfg = TrainConfig(strategy="ddp", workers=1, accum_steps=accum, accum_mode=mode, batch_size=len(images) // accum,
                      steps=10, warmup=0, grad_clip=0.0)  # fmt: skip
    engine = DDPEngine(_model().double(), cfg, torch.device("cpu"))
    micro = list(zip(images.chunk(accum), tokens.chunk(accum), strict=True))
    loss = float(engine.accumulate(micro, _loss_fn()))
    return loss, {n: p.grad.clone() for n, p in engine.module.named_parameters() if p.grad is not None}


def _assert_same(a: tuple, b: tuple, rel: float) -> None:
    assert a[0] == pytest.approx(b[0], rel=rel)
    assert a[1].keys() == b[1].keys() and len(a[1]) > 10
    for name in a[1]:
        err = (a[1][name] - b[1][name]).abs().max() / b[1][name].abs().max().clamp_min(1e-30)
        assert err < rel, f"{name}: relative gradient error {err:.2e}"


def test_one_worker_accumulation_equals_one_large_batch() -> None:
    images, tokens = _data(K * B, seed=1)
    big = _grads("contrastive", 1, images, tokens)
    _assert_same(_grads("contrastive", K, images, tokens), big, rel=1e-9)
    # the old plain averaging is a different (smaller-batch) objective: its loss is lower, its gradients differ
    avg = _grads("average", K, images, tokens)
    assert avg[0] < big[0] - 0.1
    assert (avg[1]["visual.proj"] - big[1]["visual.proj"]).abs().max() > 1e-3 * big[1]["visual.proj"].abs().max()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    images, tokens = _data(world * K * B, seed=2)
    mine = slice(rank * K * B, (rank + 1) * K * B)  # the same 32 samples per rank in both runs
    out[(rank, "big")] = _grads("contrastive", 1, images[mine], tokens[mine])
    out[(rank, "accum")] = _grads("contrastive", K, images[mine], tokens[mine])
    # locked towers under 2-worker DDP (frozen parameters are outside DDP's buckets; no find_unused_parameters)
    from test_train_lock import MICRO as LOCK_ARCH
    from test_train_lock import train_locked

    before, after, _ = train_locked(LOCK_ARCH, strategy="ddp", workers=2, lock_image=True, lock_text=True)
    out[(rank, "lock")] = {k for k in before if not torch.equal(before[k], after[k])}
    dist.destroy_process_group()


def test_two_workers_accumulation_equals_one_large_batch() -> None:
    world = 2
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(world, _free_port(), out), nprocs=world, join=True)
    for rank in range(world):
        _assert_same(out[(rank, "accum")], out[(rank, "big")], rel=1e-9)
    # DDP all-reduced the gradients: every rank holds the same; the loss saw all 64 samples (ln 64 ~ 4.2)
    _assert_same(out[(1, "accum")], out[(0, "accum")], rel=1e-12)
    assert out[(0, "big")][0] > 3.5
    assert out[(0, "lock")] == out[(1, "lock")] == {"logit_scale"}  # both towers locked: only the temperature moves


def _ds_run(stage: int, accum: int, images, tokens) -> tuple[list[float], dict[str, torch.Tensor], float]:
    """DeepSpeed (float32): losses of two optimiser steps, the first step's full gradients, its grad norm."""
    from deepspeed.utils import safe_get_full_grad

    from components.train.engine import build_engine
    from components.train.loop import _setup_distributed
    from infra.deepspeed_config import deepspeed_config

    cfg = TrainConfig(strategy="deepspeed", zero_stage=stage, workers=1, accum_steps=accum, batch_size=len(images) // accum,
                      steps=10, warmup=0, grad_clip=0.0)  # fmt: skip
    _setup_distributed(cfg)
    ds = deepspeed_config(stage, "fp32", cfg.batch_size, accum, cfg.grad_clip)
    engine = build_engine(_model(), cfg, torch.device("cpu"), ds)
    grads: dict[str, torch.Tensor] = {}

    def read_grads() -> None:  # after the window's last backward: DeepSpeed's partitioned gradients are complete
        grads.update({n: safe_get_full_grad(p).clone() for n, p in engine.module.named_parameters()})

    micro = list(zip(images.chunk(accum), tokens.chunk(accum), strict=True))
    losses = [engine.train_step(micro, _loss_fn(), read_grads)]
    norm = engine.last_grad_norm
    losses.append(engine.train_step(micro, _loss_fn()))
    return losses, grads, norm


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_accumulation_equals_one_large_batch(stage: int) -> None:
    images, tokens = _data(K * B, seed=1, dtype=torch.float32)
    big = _ds_run(stage, 1, images, tokens)
    acc = _ds_run(stage, K, images, tokens)
    assert acc[0] == pytest.approx(big[0], rel=1e-5)  # the same loss, and after one step the same weights
    assert acc[2] == pytest.approx(big[2], rel=1e-5)  # not K times the gradient, nor 1/K of it
    _assert_same((acc[0][0], acc[1]), (big[0][0], big[1]), rel=1e-5)
