"""Smoke: fine-tuning through `clip-pipeline run` - init from a model directory, image tower locked (LiT), contrastive
accumulation 4 x 8. The locked tower comes out bit-identical, the text tower moved, the tokenizer is the model's."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

import clip_core
from tests.flows.tiny_project import env, make_tiny_project

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "components" / "train"))
from shapes_data import COLOURS, SHAPES, write_shape_shards

pytestmark = pytest.mark.smoke


def _start_model(dest: Path) -> Path:
    """A model directory as `models import` or a previous run writes it (tiny, with its own tokenizer)."""
    from clip_core.model_dir import save_model_dir
    from clip_core.transforms import PreprocessConfig

    tok = clip_core.Tokenizer.train([f"a {c} {s}" for c in COLOURS for s in SHAPES] * 4, vocab_size=1024, context_length=32)
    torch.manual_seed(1)
    net = clip_core.create_model("tiny")
    pre = PreprocessConfig.from_dict({}, size=net.image_size)
    return save_model_dir(clip_core.LoadedModel(net, tok, pre, "", "model-dir", dest, dest), dest)


def test_finetune_from_a_model_dir_with_locked_image_tower_and_accumulation(tmp_path: Path) -> None:
    start = _start_model(tmp_path / "start")
    shards = write_shape_shards(tmp_path / "shards", n_shards=2, per_shard=64)
    sets = {"train.shards": f"{tmp_path}/shards/*.tar", "train.init_from": str(start), "train.lock_image": True,
            "train.accum_steps": 4, "train.batch_size": 8, "train.steps": 4, "train.ckpt_every": 4, "train.log_every": 2,
            "train.num_data_workers": 0}  # fmt: skip
    assert len(shards) == 2
    proj = make_tiny_project(tmp_path / "proj", **sets)
    e = env()
    e.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
             CLIP_RAY_TMPDIR=f"/tmp/rf-{uuid.uuid4().hex[:8]}", RAY_memory_monitor_refresh_ms="0",
             CLIP_TRAIN_NO_PROGRESS="1", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")  # fmt: skip
    e.pop("PREFECT_API_URL", None)
    p = subprocess.run(["clip-pipeline", "run", "--stages", "train"], cwd=proj, env=e, capture_output=True, text=True,
                       timeout=600)  # fmt: skip
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    out = proj / "out" / "train"
    training = json.loads((out / "run.json").read_text())["training"]
    assert training["init_from"].startswith(f"model {start} (sha256 ")
    assert training["global_batch"] == training["contrastive_batch"] == 32  # 4 x 8, one contrastive batch
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4] and all(r["loss"] > 0 for r in rows)
    before = clip_core.load_checkpoint(start / "model.safetensors").state_dict()
    after = clip_core.load_checkpoint(out / "model" / "model.safetensors").state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not {k for k in changed if k.startswith("visual.")}  # LiT: the image tower is exactly the start's
    assert "text_projection" in changed and "transformer.resblocks.0.attn.in_proj_weight" in changed
    tokenizer = json.loads((out / "model" / "tokenizer.json").read_text())
    assert tokenizer == json.loads((start / "tokenizer.json").read_text())  # the start's tokenizer, no new BPE
