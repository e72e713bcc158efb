"""Smoke: `clip-pipeline data ingest --address` with data.engine=ray on a two-node Ray cluster (head + second node on
loopback, token auth) uses both nodes and writes exactly what the local engine writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from components.data.ingest import ingest
from tests.components.data.ingest_outputs import CFG, assert_same_ingest, write_mixed_sources

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "infra"))
from ray_cluster import LoopbackCluster  # noqa: E402

pytestmark = pytest.mark.smoke


@pytest.fixture()
def cluster(monkeypatch):
    """Head + second node, 1 CPU each; the finalizer kills every process of it (as tests/infra/test_multinode.py)."""
    import ray
    from ray._private.authentication_test_utils import reset_auth_token_state

    if ray.is_initialized():  # a local Ray left by another module would capture the ingest
        ray.shutdown()
    c = LoopbackCluster()
    try:
        c.start()
        for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):
            monkeypatch.setenv(k, c.env()[k])
        monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        reset_auth_token_state()  # this driver now uses the cluster's token
        yield c
    finally:
        ray.shutdown()
        monkeypatch.undo()
        reset_auth_token_state()
        c.stop()
        assert not c.processes(), "cluster processes survived the teardown"


def test_ingest_on_two_nodes_equals_the_local_run(cluster: LoopbackCluster, tmp_path: Path, monkeypatch) -> None:
    from flows.cli import main

    monkeypatch.chdir(tmp_path)
    sources = write_mixed_sources(tmp_path)
    ingest(sources, "local", CFG)
    sets = [f"pipeline.out_root={tmp_path}", "data.engine=ray", "data.ingest.progress=false",
            "data.ingest.num_workers=0", "data.ingest.max_pixels=1000000", "data.ingest.samples_per_shard=5",
            "data.ingest.batch_size=4"]  # fmt: skip
    args = ["--params", str(ROOT / "params.yaml"), *(a for s in sets for a in ("--set", s))]
    args += ["data", "ingest", "--address", cluster.address, "--out", "ray", *(a for s in sources for a in ("--source", s))]
    assert main(args) == 0
    out = assert_same_ingest(tmp_path / "local", tmp_path / "ray")
    assert len(out["metadata"]) == 25 and len(out["quarantine"]) == 23
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert (summary["engine"], summary["n_nodes"]) == ("ray", 2)  # both nodes decoded
