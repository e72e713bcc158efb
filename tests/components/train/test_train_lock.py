"""Tower locking: locked tensors stay bit-identical through training, get no optimiser state; frozen BatchNorm stays frozen."""

from __future__ import annotations

import pytest
import torch

import clip_core
from components.train.config import TrainConfig
from components.train.engine import build_engine
from components.train.loop import _setup_distributed, lock_towers

MICRO = {"embed_dim": 16, "vision_cfg": {"image_size": 16, "layers": 3, "width": 32, "patch_size": 8, "head_width": 16},
         "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 2}}  # fmt: skip
MICRO_RN = {**MICRO, "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None, "head_width": 16}}


def _batch(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, 60, (n, 8), generator=g)
    tokens[:, 5] = 63
    return torch.randn(n, 3, size, size, generator=g), tokens


def train_locked(arch: dict, steps: int = 2, accum: int = 2, **train: object):
    """(initial state, final state, engine) after `steps` optimiser steps of a model locked per `train`."""
    cfg = TrainConfig(**{"workers": 1, "steps": 10, "warmup": 0, "batch_size": 4, "accum_steps": accum, "lr": 0.01, **train})
    _setup_distributed(cfg)
    torch.manual_seed(0)
    model = clip_core.create_model("tiny", **arch)
    lock_towers(model, cfg)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ds = None
    if cfg.strategy == "deepspeed":
        from infra.deepspeed_config import deepspeed_config

        ds = deepspeed_config(cfg.zero_stage, "fp32", cfg.batch_size, accum, cfg.grad_clip)
    engine = build_engine(model, cfg, torch.device("cpu"), ds)
    clip = clip_core.ClipLoss()
    for step in range(steps):
        micro = [_batch(4, arch["vision_cfg"]["image_size"], seed=10 * step + j) for j in range(accum)]
        engine.train_step(micro, lambda i, t, s, *_: clip(i, t, s))
    after = engine.export_state_dict()
    return before, {k: v.reshape(before[k].shape) for k, v in after.items()}, engine


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def _text_keys(before: dict) -> set[str]:
    return {k for k in before if not k.startswith("visual.") and not k.startswith("logit_")}


@pytest.mark.parametrize(("strategy", "stage"), [("ddp", 0), ("deepspeed", 2), ("deepspeed", 3)])
def test_locked_tensors_are_bit_identical_after_training(strategy: str, stage: int) -> None:
    # ViT groups: [embeddings], block 0, block 1, [block 2, ln_post], proj -> 2 unlocked = last block, ln_post, proj
    before, after, engine = train_locked(
        MICRO, strategy=strategy, zero_stage=stage, lock_image=True, lock_image_unlocked_groups=2,
        lock_text=True, lock_text_unlocked_layers=1,
    )  # fmt: skip
    unlocked = {k for k in before if k.startswith(("visual.transformer.resblocks.2.", "visual.ln_post.", "visual.proj"))}
    unlocked |= {"text_projection", "logit_scale"}
    assert _changed(before, after) == unlocked  # every locked tensor bit-identical, every unlocked one moved
    trainable = {id(p) for p in engine.module.parameters() if p.requires_grad}
    assert len(trainable) == len(unlocked)
    if strategy == "ddp":  # optimiser state only for trainable parameters (the memory LiT saves)
        assert {id(p) for g in engine.optimizer.param_groups for p in g["params"]} == trainable
        assert {id(p) for p in engine.optimizer.state} == trainable
    else:  # DeepSpeed's (flattened) optimiser holds as many elements as the trainable parameters, not the model
        n_trainable = sum(p.ds_numel if stage == 3 else p.numel() for p in engine.module.parameters() if p.requires_grad)
        n_state = sum(t.numel() for s in engine.optimizer.optimizer.state.values() for t in s.values() if t.ndim)
        assert 2 * n_trainable <= n_state < 2 * n_trainable + 4096  # exp_avg + exp_avg_sq, plus alignment padding


def test_resnet_frozen_batchnorm_keeps_its_statistics() -> None:
    before, after, engine = train_locked(MICRO_RN, strategy="ddp", lock_image=True, lock_image_freeze_bn_stats=True)
    assert not _changed(before, after) & {k for k in before if k.startswith("visual.")}  # running stats too
    engine.module.train()
    assert not any(m.training for m in engine.module.visual.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert _changed(before, after) == _text_keys(before) | {"logit_scale"}
    # control: locked without freeze_bn_stats, BatchNorm still normalises with batch statistics and updates its stats
    before, after, _ = train_locked(MICRO_RN, strategy="ddp", lock_image=True)
    assert "visual.bn1.running_mean" in _changed(before, after) and "visual.conv1.weight" not in _changed(before, after)


def test_lock_groups_out_of_range_name_the_limit() -> None:
    model = clip_core.create_model("tiny", **MICRO)
    with pytest.raises(ValueError, match=r"\[0, 5\]"):
        model.lock_image_tower(unlocked_groups=6)
