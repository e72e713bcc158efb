"""Issue #21's walk on a tiny project: a second img2dataset-style download (keys from 000000000 again) added beside
the first reaches training through a scheduled retrain, which trains on the new data version instead of resuming
the old checkpoint, and is registered with it; a retrain whose new download is mostly bad fails loudly."""

import json
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pytest

from components.data.config import SynthConfig
from components.data.storage import tar_bytes
from components.data.synth import build_synth
from tests.flows.tiny_project import env, make_tiny_project

pytestmark = pytest.mark.smoke

STAGES = ["ingest", "validate", "train", "evaluate", "register"]
FAST = {"train.steps": 8, "train.ckpt_every": 4, "evaluate.tasks": ["zeroshot_classification"], "evaluate.datasets": ["shape"]}


def _flow(proj: Path, e: dict, *args: str) -> tuple[int, str]:
    import subprocess

    p = subprocess.run(["clip-pipeline", *args], cwd=proj, env=e, capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout + p.stderr


def _second_download(tmp: Path, dest: Path) -> None:
    """300 new pairs rendered with another seed; img2dataset numbers every download's keys from 000000000."""
    cfg = SynthConfig(seed=7, n_train=300, samples_per_shard=300, n_eval_per_class=1, n_compositional_per_pair=1,
                      n_retrieval=4, n_planted_duplicates=0, num_workers=0)  # fmt: skip
    build_synth(str(tmp), cfg)
    shutil.copy(tmp / "train" / "shard-000000.tar", dest)


def _bad_download(dest: Path) -> None:
    """A download gone wrong: 280 of its 300 "images" are error pages."""
    import io

    from PIL import Image

    members = []
    for i in range(300):
        key, buf = f"{i:09d}", io.BytesIO()
        Image.effect_noise((32, 32), 40 + i).convert("RGB").save(buf, format="PNG")
        image = buf.getvalue() if i % 15 == 0 else b"<html>403 Forbidden</html>"
        members += [(f"{key}.jpg", image), (f"{key}.txt", f"pair {i} of a broken download".encode())]
    dest.write_bytes(tar_bytes(members))


def test_a_new_download_reaches_training_and_a_bad_one_fails_the_retrain(tmp_path: Path) -> None:
    proj = make_tiny_project(tmp_path / "proj", **FAST)
    e = env()
    ray_tmp = f"/tmp/rg-{uuid.uuid4().hex[:8]}"  # short: Ray's socket paths must stay under 107 characters
    e.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false", CLIP_RAY_TMPDIR=ray_tmp,
             RAY_memory_monitor_refresh_ms="0", CLIP_TRAIN_NO_PROGRESS="1")  # fmt: skip
    e.pop("PREFECT_API_URL", None)
    out = proj / "out"
    try:
        rc, log = _flow(proj, e, "run", "--stages", "synth", *STAGES)
        assert rc == 0, log[-4000:]
        first = json.loads((out / "train" / "run.json").read_text())["training"]
        assert first["init_from"] == "scratch" and first["n_samples"] == 1200

        _second_download(tmp_path / "dl2", proj / "data" / "raw" / "train" / "dl2-000000.tar")
        rc, log = _flow(proj, e, "--set", "train.init_from=champion", "run", "--only-if-data-changed", "--stages", *STAGES)
        assert rc == 0, log[-4000:]
        assert "data changed" in log
        assert "300 new samples arrived in 1 source(s) since champion v1, 0 were quarantined (none), 300 reached" in log
        meta = pd.read_parquet(out / "ingest" / "metadata.parquet")
        assert len(meta) == 1500 and meta["key"].is_unique  # the new download's 000000000.. were ingested too
        second = json.loads((out / "train" / "run.json").read_text())["training"]
        assert second["data_version"] != first["data_version"] and second["n_samples"] == 1500
        assert second["resumed_from_step"] is None and second["init_from"].startswith("champion v1")
        assert "resumed from" not in log  # trained on the new data, schedule restarted
        rows = [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [4, 8] and not any("resumed_from" in r for r in rows)  # from step 0
        registry = json.loads((out / "registry" / "registry.json").read_text())
        v2 = registry["entries"][1]
        assert v2["version"] == 2 and v2["training"]["data_version"] == second["data_version"]
        assert "+300 from 1 new source(s); trained from champion v1" in v2["data"]
        assert (proj / registry["champion"]["model"] / "model.safetensors").exists()  # archived, not OUT/train/model

        _bad_download(proj / "data" / "raw" / "train" / "dl3-000000.tar")
        rc, log = _flow(proj, e, "run", "--only-if-data-changed", "--stages", *STAGES)
        assert rc != 0, log[-4000:]
        assert "were quarantined (undecodable_image: 280)" in log and "new samples arrived" in log, log[-4000:]
        assert "over data.validate.max_quarantine_rate" in log
        assert len(json.loads((out / "registry" / "registry.json").read_text())["entries"]) == 2  # nothing registered
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
