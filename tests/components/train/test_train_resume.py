"""Resume: a run restarted from its step-20 checkpoint reproduces the uninterrupted run step for step.

Under DeepSpeed both runs accumulate 2 micro-batches of 8 per step (contrastive accumulation: cached features,
RNG replay, DeepSpeed's own accumulation boundary restored from its checkpoint); DDP steps 16 at once.
"""

import json
import shutil
from pathlib import Path

import pytest

import clip_core
from components.train.config import TrainConfig
from components.train.loop import train_loop_per_worker

pytestmark = pytest.mark.smoke


def _losses(storage: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (storage / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


@pytest.mark.parametrize(("strategy", "accum"), [("ddp", 1), ("deepspeed", 2)])
def test_resumed_run_matches_uninterrupted_run(fn_config, tmp_path: Path, strategy: str, accum: int, monkeypatch) -> None:
    monkeypatch.setenv("CLIP_TRAIN_NO_PROGRESS", "1")
    cfg = TrainConfig(
        workers=1,
        steps=40,
        batch_size=16 // accum,
        accum_steps=accum,
        warmup=4,
        ckpt_every=20,
        log_every=1,
        keep_last=5,
        strategy=strategy,
        zero_stage=2,
        num_data_workers=0,
        shuffle_buffer=32,
        seed=3,
    )
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    train_loop_per_worker(fn_config(cfg, str(full)))
    # the "crash": only the step-20 checkpoint survived; the restarted run must continue from it
    shutil.copytree(full / "checkpoints" / "step-00000020", resumed / "checkpoints" / "step-00000020")
    train_loop_per_worker(fn_config(cfg, str(resumed)))
    a, b = _losses(full), _losses(resumed)
    assert sorted(b) == list(range(21, 41))
    assert [b[s] for s in range(21, 41)] == pytest.approx([a[s] for s in range(21, 41)], rel=1e-5, abs=1e-6)
    assert a[40] < a[1]
    ma = clip_core.load_checkpoint(full / "model" / "model.safetensors").state_dict()
    mb = clip_core.load_checkpoint(resumed / "model" / "model.safetensors").state_dict()
    assert all((ma[k] - mb[k]).abs().max() < 1e-5 for k in ma)
    assert clip_core.Tokenizer.load(full / "model" / "tokenizer.json").context_length == 32


@pytest.mark.parametrize(("stage", "storage"), [(0, "local"), (3, "memory")])
def test_zero_stages_match_ddp_and_export_scalars(fn_config, tmp_path: Path, stage: int, storage: str, monkeypatch) -> None:
    """ZeRO 0 and 3 (0-dim logit_scale promoted for DeepSpeed) follow DDP's trajectory; any fsspec storage."""
    import uuid

    import fsspec

    monkeypatch.setenv("CLIP_TRAIN_NO_PROGRESS", "1")
    base = dict(workers=1, steps=6, batch_size=16, warmup=2, ckpt_every=3, log_every=2, num_data_workers=0, shuffle_buffer=32)
    ddp = tmp_path / "ddp"
    train_loop_per_worker(fn_config(TrainConfig(strategy="ddp", **base), str(ddp)))
    url = str(tmp_path / "ds") if storage == "local" else f"memory://zero-{uuid.uuid4().hex}"
    train_loop_per_worker(fn_config(TrainConfig(strategy="deepspeed", zero_stage=stage, **base), url))
    fs, root = fsspec.core.url_to_fs(url)
    rows = [json.loads(x) for x in fs.cat_file(f"{root}/metrics.jsonl").decode().splitlines()]
    assert [r["loss"] for r in rows] == pytest.approx(list(_losses(ddp).values()), rel=1e-4)
    local = tmp_path / "exported"
    fs.get(f"{root}/model/", str(local), recursive=True)
    model = clip_core.load_checkpoint(local / "model.safetensors")
    assert model.logit_scale.ndim == 0
