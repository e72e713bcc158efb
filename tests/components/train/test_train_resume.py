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


@pytest.mark.parametrize(
    ("strategy", "accum", "data"), [("ddp", 1, "plain"), ("deepspeed", 2, "plain"), ("ddp", 1, "mixture")]
)  # the data stream does not depend on the engine: the mixture runs on one
def test_resumed_run_matches_uninterrupted_run(fn_config, shape_shards, tmp_path: Path, strategy: str, accum: int,
                                               data: str, monkeypatch) -> None:  # fmt: skip
    """plain: permutation passes over one source; mixture: two weighted sources, shards resampled with replacement."""
    monkeypatch.setenv("CLIP_TRAIN_NO_PROGRESS", "1")
    mixture = data == "mixture"
    steps = 12 if mixture else 40  # the mixture runs shorter: it re-checks the resume point, not the convergence
    extra = {"shards": [{"urls": shape_shards[:1], "weight": 3.0}, {"urls": shape_shards[1:], "weight": 1.0}]} if mixture else {}
    cfg = TrainConfig(
        workers=1,
        steps=steps,
        resampled=mixture,
        batch_size=16 // accum,
        accum_steps=accum,
        warmup=4,
        ckpt_every=steps // 2,
        log_every=1,
        keep_last=5,
        strategy=strategy,
        zero_stage=2,
        num_data_workers=0,
        shuffle_buffer=32,
        seed=3,
    )
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    train_loop_per_worker(fn_config(cfg, str(full), **extra))
    # the "crash": only the mid-run checkpoint survived; the restarted run must continue from it
    half = f"step-{steps // 2:08d}"
    shutil.copytree(full / "checkpoints" / half, resumed / "checkpoints" / half)
    train_loop_per_worker(fn_config(cfg, str(resumed), **extra))
    a, b = _losses(full), _losses(resumed)
    after = range(steps // 2 + 1, steps + 1)
    assert sorted(b) == list(after)
    assert [b[s] for s in after] == pytest.approx([a[s] for s in after], rel=1e-5, abs=1e-6)
    assert a[steps] < a[1]
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
