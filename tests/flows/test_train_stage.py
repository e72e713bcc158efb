"""Smoke: the `train` stage end to end on a shared local Ray (2 CPU workers), DeepSpeed ZeRO-2 and DDP, with a fault."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "components" / "train"))
from shapes_data import write_colour_eval, write_shape_shards  # noqa: E402

pytestmark = pytest.mark.smoke


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    """One local Ray for all tests here (start-up costs ~25 s), with token authentication as every Ray we start."""
    import os
    import stat

    import ray
    from ray._private.authentication_test_utils import reset_auth_token_state
    from ray._raylet import AuthenticationMode, get_authentication_mode

    from infra.ray_launcher import ensure_ray

    os.environ["CLIP_RAY_TMPDIR"] = str(tmp_path_factory.mktemp("ray"))
    os.environ["CLIP_TRAIN_NO_PROGRESS"] = "1"
    token = tmp_path_factory.mktemp("ray-token") / "auth_token"  # not the user's ~/.ray/auth_token
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_TOKEN_PATH", str(token))
        mp.delenv("RAY_AUTH_MODE", raising=False)
        mp.delenv("RAY_AUTH_TOKEN", raising=False)
        ensure_ray(num_cpus=4)
        assert get_authentication_mode() == AuthenticationMode.TOKEN  # what a plain `ensure_ray()` starts
        assert stat.S_IMODE(token.stat().st_mode) == 0o600  # written by us before Ray would write it 0644
        yield
        ray.shutdown()
        mp.delenv("RAY_AUTH_MODE", raising=False)  # Ray set it for this process
    reset_auth_token_state()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("out")
    write_shape_shards(root / "ingest" / "shards", n_shards=4, per_shard=64)
    write_colour_eval(root / "eval" / "colours", n=80)
    return root


def _params(out: Path, data_root: Path, *sets: str):
    from flows.params import load_params

    base = [
        f"pipeline.out_root={out}",
        f"train.shards={data_root}/ingest/shards/*.tar",
        "train.workers=2",
        "train.batch_size=32",
        "train.warmup=10",
        "train.log_every=10",
        "train.num_data_workers=0",
        "train.lr=0.002",
    ]
    return load_params(ROOT / "params.yaml", [*base, *sets])


def _metrics(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("strategy", ["deepspeed", "ddp"])
def test_two_workers_loss_falls(ray_session, data_root: Path, tmp_path: Path, strategy: str) -> None:
    from flows.train_stage import run_train

    params = _params(
        tmp_path,
        data_root,
        f"train.strategy={strategy}",
        "train.zero_stage=2",
        "train.steps=100",
        "train.ckpt_every=50",
        "train.eval_every=50",
        f"train.eval_dataset={data_root}/eval/colours",
    )
    model_dir = Path(run_train(params))
    rows = _metrics(tmp_path)
    assert [r["step"] for r in rows] == list(range(10, 101, 10))
    assert rows[-1]["loss"] < 0.7 * rows[0]["loss"]  # ln(64) ~ 4.2 at the start, clearly lower at the end
    assert rows[-1]["zeroshot_top1"] > 0.5  # 8 colours: chance is 0.125
    assert {"lr", "logit_scale", "samples_per_s", "data_wait_frac", "rss_gib"} <= set(rows[-1])
    assert {p.name for p in model_dir.iterdir()} >= {"model.safetensors", "model.json", "tokenizer.json"}
    import clip_core

    clip_core.load_checkpoint(model_dir / "model.safetensors")
    ckpts = sorted(p.name for p in (tmp_path / "train" / "checkpoints").iterdir())
    assert ckpts == ["step-00000050", "step-00000100"]


def test_killed_worker_restarts_from_checkpoint(ray_session, data_root: Path, tmp_path: Path) -> None:
    from flows.train_stage import run_train

    flag = tmp_path / "fault.flag"
    params = _params(
        tmp_path, data_root, "train.strategy=deepspeed", "train.steps=60", "train.ckpt_every=20", "train.max_failures=1"
    )
    run_train(params, fault={"rank": 1, "step": 30, "flag": str(flag)})
    assert flag.read_text().startswith("rank 1 killed at step 30")
    rows = _metrics(tmp_path)
    assert [r["step"] for r in rows] == list(range(10, 61, 10))  # history kept up to step 20, then re-run
    assert [r.get("resumed_from") for r in rows] == [None] * 2 + [20] * 4
    assert (tmp_path / "train" / "model" / "model.safetensors").exists()
    assert rows[-1]["loss"] < rows[0]["loss"]
