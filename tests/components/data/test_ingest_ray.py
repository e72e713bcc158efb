"""data.engine=ray: ingest on a local Ray writes exactly what the local engine writes, bad samples included."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.data.config import IngestConfig
from components.data.ingest import ingest
from components.data.storage import tar_bytes
from tests.components.data.conftest import bad_manifest, bad_shards, png
from tests.components.data.ingest_outputs import assert_same_ingest

CFG = IngestConfig(num_workers=0, max_pixels=1_000_000, samples_per_shard=5, batch_size=4, progress=False)


def write_mixed_sources(root: Path) -> list[str]:
    """Sources with every bad case: the bad shard set, a clean shard, the bad manifest and a missing file; output shards
    straddle the source boundaries (5 samples each). Paths are relative to `root` (the caller's working directory)."""
    (root / "shards").mkdir(parents=True)
    (root / "manifest").mkdir()
    bad_shards(root / "shards")
    bad_manifest(root / "manifest")
    clean = [m for i in range(7) for m in ((f"c{i}.png", png(seed=200 + i)), (f"c{i}.txt", f"clean caption {i}".encode()))]
    (root / "shards" / "clean.tar").write_bytes(tar_bytes(clean))
    return ["shards/shard-{000000,000001}.tar", "shards/clean.tar", "manifest/manifest.csv", "shards/missing.tar"]


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A 2-CPU local Ray started as `ensure_ray` starts one (token auth, token file in a temp dir), shut down after."""
    import ray
    from ray._private.authentication_test_utils import reset_auth_token_state

    from infra.ray_launcher import ensure_ray

    if ray.is_initialized():
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIP_RAY_TMPDIR", str(tmp_path_factory.mktemp("ray")))
        mp.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path_factory.mktemp("ray-token") / "auth_token"))
        mp.delenv("RAY_AUTH_MODE", raising=False)
        mp.delenv("RAY_AUTH_TOKEN", raising=False)
        mp.delenv("RAY_ADDRESS", raising=False)
        ensure_ray(num_cpus=2)
        try:
            yield
        finally:
            ray.shutdown()
            mp.delenv("RAY_AUTH_MODE", raising=False)  # Ray set it for this process
    reset_auth_token_state()


def test_ray_engine_writes_what_the_local_engine_writes(local_ray, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative sources: Ray's workers must read them from this directory too
    sources = write_mixed_sources(tmp_path)
    local = ingest(sources, "local", CFG)
    ray_run = ingest(sources, "ray", CFG, engine="ray")
    out = assert_same_ingest(tmp_path / "local", tmp_path / "ray")
    assert (ray_run.engine, local.engine) == ("ray", "local") and ray_run.n_nodes == 1
    # not vacuous: every kind of bad input is in the compared tables
    reasons = {r["reason"] for r in out["quarantine"]}
    assert {"undecodable_image", "truncated_tar", "decompression_bomb", "duplicate_key", "missing_image"} <= reasons
    assert "unreadable_source" in reasons  # shards/missing.tar, its detail naming the relative path in both runs
    assert (ray_run.n_ingested, ray_run.n_quarantined, ray_run.n_shards) == (25, 23, 5)
    assert {m["source_shard"] for m in out["metadata"]} == {
        "shards/shard-000000.tar", "shards/shard-000001.tar", "shards/clean.tar", "manifest/manifest.csv"
    }  # fmt: skip
