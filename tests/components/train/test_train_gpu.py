"""GPU tier (CUDA, or CPU in the GPU kit's dry run): DDP bf16/fp16, DeepSpeed ZeRO 2/3 over NCCL, resume on the device."""

import json
import shutil
from pathlib import Path

import pytest
import torch

import clip_core
from components.train.config import TrainConfig
from components.train.loop import train_loop_per_worker

# one process group per test session, as in the CPU tests: DeepSpeed caches its groups, so a group torn down
# between tests would leave it holding a dead one
pytestmark = pytest.mark.gpu


def _rows(storage: Path) -> list[dict]:
    return [json.loads(x) for x in (storage / "metrics.jsonl").read_text().splitlines()]


def _cfg(device: torch.device, **kw) -> TrainConfig:
    base = dict(workers=1, steps=40, batch_size=32, warmup=4, ckpt_every=40, log_every=10, num_data_workers=1,
                shuffle_buffer=32, use_gpu=device.type == "cuda")  # fmt: skip
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize(
    ("strategy", "precision", "stage"),
    [("ddp", "bf16", 0), ("ddp", "fp16", 0), ("deepspeed", "bf16", 2), ("deepspeed", "bf16", 3)],
)
def test_training_steps_on_device(fn_config, gpu_device, tmp_path: Path, strategy, precision, stage, monkeypatch) -> None:
    if precision == "fp16" and gpu_device.type != "cuda":
        pytest.skip("fp16 with GradScaler needs CUDA (the CPU dry run covers bf16)")
    monkeypatch.setenv("CLIP_TRAIN_NO_PROGRESS", "1")
    cfg = _cfg(gpu_device, strategy=strategy, precision=precision, zero_stage=stage)
    out = tmp_path / f"{strategy}{stage}"
    train_loop_per_worker(fn_config(cfg, str(out)))
    rows = _rows(out)
    assert all(r["loss"] == r["loss"] for r in rows) and rows[-1]["loss"] < rows[0]["loss"]
    if gpu_device.type == "cuda":
        assert rows[-1]["cuda_max_alloc_gib"] > 0
        if strategy == "deepspeed":
            import torch.distributed as dist

            assert dist.get_backend() == "nccl"
    model = clip_core.load_checkpoint(out / "model" / "model.safetensors")
    assert model.logit_scale.ndim == 0 and all(torch.isfinite(v).all() for v in model.state_dict().values())


@pytest.mark.parametrize("strategy", ["ddp", "deepspeed"])
def test_resume_on_device_continues_the_run(fn_config, gpu_device, tmp_path: Path, strategy, monkeypatch) -> None:
    """A run restarted from its step-10 checkpoint on the device follows the uninterrupted one.

    CUDA kernels (atomics in attention and conv backward) are not bit-deterministic, so the tolerance is
    looser than the CPU resume test's.
    """
    monkeypatch.setenv("CLIP_TRAIN_NO_PROGRESS", "1")
    cfg = _cfg(gpu_device, strategy=strategy, precision="bf16", steps=20, ckpt_every=10, log_every=1, keep_last=3,
               num_data_workers=0, seed=3)  # fmt: skip
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    train_loop_per_worker(fn_config(cfg, str(full)))
    shutil.copytree(full / "checkpoints" / "step-00000010", resumed / "checkpoints" / "step-00000010")
    train_loop_per_worker(fn_config(cfg, str(resumed)))
    a = {r["step"]: r["loss"] for r in _rows(full)}
    b = {r["step"]: r for r in _rows(resumed)}
    assert sorted(b) == list(range(11, 21)) and b[11]["resumed_from"] == 10
    assert [b[s]["loss"] for s in range(11, 21)] == pytest.approx([a[s] for s in range(11, 21)], rel=2e-2, abs=1e-3)
