"""Smoke: `clip-pipeline data ingest --address` and the CLIP-score filter with data.engine=ray on a two-node Ray cluster
(head + second node on loopback, token auth) use both nodes and write exactly what the local engine writes."""

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

sys.path.insert(0, str(ROOT / "tests" / "components" / "filter"))
from filter_data import one_thread, train_teacher  # noqa: E402

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


def test_ingest_and_filter_on_two_nodes_equal_the_local_run(cluster: LoopbackCluster, tmp_path: Path, monkeypatch) -> None:
    import pandas as pd

    from flows.cli import main
    from flows.params import load_params
    from flows.stages import run_filter

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

    # the filter stage on the same cluster (the driver stays connected): scores and kept keys equal the local engine's
    with one_thread():
        teacher = train_teacher(tmp_path / "teacher", steps=10)
    scores = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"filter-{engine}"
        (out / "ingest").mkdir(parents=True)
        for f in (tmp_path / engine).iterdir():
            (out / "ingest" / f.name).symlink_to(f)
        params = load_params(str(ROOT / "params.yaml"), [f"pipeline.out_root={out}", f"data.engine={engine}",
                             "filter.enabled=true", f"filter.teacher={teacher}", "filter.keep_fraction=0.5",
                             "filter.device=cpu", "filter.batch_size=8", "filter.ray_actors=1"])  # fmt: skip
        summary = run_filter(params, address=cluster.address).summary
        assert summary["engine"] == engine and summary["pairs"] == 25 and summary["kept"] == 12
        scores[engine] = pd.read_parquet(out / "filter" / "scores.parquet")
    loc, ray_ = scores["local"], scores["ray"]
    assert ray_["key"].tolist() == loc["key"].tolist() and ray_["kept"].tolist() == loc["kept"].tolist()
    pd.testing.assert_series_equal(ray_["score"], loc["score"], rtol=0, atol=1e-5)
