"""data.engine=ray: ingest on a local Ray writes exactly what the local engine writes, bad samples included."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.data.ingest import ingest
from tests.components.data.ingest_outputs import CFG, assert_same_ingest, write_mixed_sources


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
    with pytest.raises(ValueError, match="memory://"):  # other processes cannot see it: refused before any work
        ingest(["memory://nowhere/a.tar"], str(tmp_path / "mem"), CFG, engine="ray")
    assert {m["source_shard"] for m in out["metadata"]} == {
        "shards/shard-000000.tar", "shards/shard-000001.tar", "shards/clean.tar", "manifest/manifest.csv"
    }  # fmt: skip


@pytest.mark.faults
def test_a_decoder_that_kills_its_ray_worker_fails_the_run(local_ray, bad_shard_set) -> None:
    """The local engine quarantines such a sample (decoder_crash); on Ray the task is retried, then the run stops,
    instead of Ray Data's default of retrying a dead worker's task forever."""
    import ray

    from components.data.ray_engine import check_on_ray
    from components.data.sources import expand_sources
    from tests.components.data.test_data_ingest import _crashing_check

    urls, _, _ = bad_shard_set
    with pytest.raises(RuntimeError, match=r"died 4 times.*decoder_crash") as e:
        list(check_on_ray(expand_sources(urls), CFG, check=_crashing_check))
    assert isinstance(e.value.__cause__, ray.exceptions.WorkerCrashedError)
