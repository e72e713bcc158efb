"""GPU path (skipped without CUDA): bf16 on DDP and DeepSpeed ZeRO-2, fp16 with loss scaling; loss finite and falling."""

import json
from pathlib import Path

import pytest

from components.train.config import TrainConfig
from components.train.loop import train_loop_per_worker

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize(("strategy", "precision"), [("ddp", "bf16"), ("ddp", "fp16"), ("deepspeed", "bf16")])
def test_gpu_training_steps(fn_config, tmp_path: Path, strategy: str, precision: str, monkeypatch) -> None:
    monkeypatch.setenv("CLIP_TRAIN_NO_PROGRESS", "1")
    cfg = TrainConfig(
        workers=1,
        steps=40,
        batch_size=32,
        warmup=4,
        ckpt_every=40,
        log_every=10,
        use_gpu=True,
        strategy=strategy,
        precision=precision,
        num_data_workers=1,
        shuffle_buffer=32,
    )
    train_loop_per_worker(fn_config(cfg, str(tmp_path / strategy)))
    rows = [json.loads(x) for x in (tmp_path / strategy / "metrics.jsonl").read_text().splitlines()]
    assert all(r["loss"] == r["loss"] for r in rows) and rows[-1]["loss"] < rows[0]["loss"]
    assert rows[-1]["cuda_max_alloc_gib"] > 0
