"""Faults: training on a two-node Ray cluster (head + second node on loopback); the second node dies mid-run."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "components" / "train"))
sys.path.insert(0, str(Path(__file__).parent))
from ray_cluster import LoopbackCluster  # noqa: E402
from shapes_data import write_shape_shards  # noqa: E402

pytestmark = pytest.mark.faults


@pytest.fixture()
def cluster(monkeypatch):
    """A fresh head + second node per test (token authentication on); the finalizer kills every process of it."""
    import ray
    from ray._private.authentication_test_utils import reset_auth_token_state

    if ray.is_initialized():  # a local Ray left by another module would capture run_train
        ray.shutdown()
    c = LoopbackCluster()
    try:
        c.start()
        for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "CLIP_TRAIN_NO_PROGRESS", "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"):
            monkeypatch.setenv(k, c.env()[k])
        monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        reset_auth_token_state()  # Ray caches the auth mode and token per process: this driver now uses the cluster's
        yield c
    finally:
        ray.shutdown()
        monkeypatch.undo()
        reset_auth_token_state()  # before the token file goes with the cluster's temp dir
        c.stop()
        assert not c.processes(), "cluster processes survived the teardown"


@pytest.fixture(scope="module")
def shards_glob(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("shards")
    write_shape_shards(root, n_shards=4, per_shard=64)
    return f"{root}/*.tar"


def _params(out: Path, shards: str, *sets: str):
    from flows.params import load_params

    base = [
        f"pipeline.out_root={out}",
        f"train.shards={shards}",
        "train.strategy=ddp",
        "train.workers=2",
        "train.cpus_per_worker=1",
        "train.batch_size=16",
        "train.warmup=5",
        "train.log_every=10",
        "train.num_data_workers=0",
        "train.shuffle_buffer=64",
    ]
    return load_params(ROOT / "params.yaml", [*base, *sets])


def _metrics(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().splitlines()]


def _train_workers() -> list[dict]:
    """Every Ray Train worker actor the cluster has seen (alive or dead), with its node id.

    Read from the GCS actor table (`ray._private.state`, a DeveloperAPI): the public state API
    (`ray.util.state`) needs the dashboard, which these clusters leave off to save memory.
    """
    from ray._private.state import actors

    return [
        {"node_id": a["Address"]["NodeID"], "state": a["State"], "pid": a["Pid"]}
        for a in actors().values()
        if a["ActorClassName"] == "RayTrainWorker"
    ]


def _node_ids() -> dict[str, str]:
    """{"head"|"second": node id} from the custom resources the nodes were started with."""
    import ray

    out = {}
    for n in ray.nodes():
        for name in ("head", "second"):
            if name in n["Resources"]:
                out[name] = n["NodeID"]
    return out


# A Ray client: exit 3 when the cluster refuses it (authentication), 0 when it gets in.
CLIENT = """
import sys, ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False)
except (ConnectionError, ray.exceptions.AuthenticationError) as e:
    print(repr(e), repr(e.__cause__))
    sys.exit(3)
print("connected", ray.cluster_resources())
"""


def test_workers_spread_over_two_nodes(cluster: LoopbackCluster, shards_glob: str, tmp_path: Path) -> None:
    import ray

    from flows.train_stage import run_train

    # Token authentication: clients without the cluster's token (none, or a wrong one) are refused, while this
    # driver, which has it, trains. They run beside the training (one cluster for both checks).
    strangers = {
        "no token": {"RAY_AUTH_MODE": "disabled"},
        "wrong token": {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64},
    }
    env = {k: v for k, v in cluster.env().items() if not k.startswith("RAY_AUTH")}
    clients = {
        name: subprocess.Popen([sys.executable, "-c", CLIENT, cluster.address], env={**env, **extra},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name, extra in strangers.items()
    }  # fmt: skip
    params = _params(tmp_path, shards_glob, "train.steps=30", "train.ckpt_every=10", "train.max_failures=0")
    model_dir = Path(run_train(params, address=cluster.address))
    for name, p in clients.items():
        out = p.communicate(timeout=120)[0]
        assert p.returncode == 3, f"{name}: {out[-2000:]}"
        assert "InvalidAuthToken" in out, f"{name}: {out[-2000:]}"
    nodes = _node_ids()
    assert set(nodes) == {"head", "second"}
    assert ray.get_runtime_context().get_node_id() == nodes["head"]  # the driver (and the Train controller) is on the head
    workers = _train_workers()
    assert len(workers) == 2
    assert {w["node_id"] for w in workers} == set(nodes.values())  # one worker per node: both nodes trained
    assert [r["step"] for r in _metrics(tmp_path)] == [10, 20, 30]
    assert (model_dir / "model.safetensors").exists()


def _train_in_background(params, cluster: LoopbackCluster, wait_for: Path) -> tuple[threading.Thread, dict]:
    """Start run_train in a thread; return once checkpoint `wait_for` is committed (the run is mid-way)."""
    from flows.train_stage import run_train

    outcome: dict = {}

    def train() -> None:
        try:
            outcome["model"] = run_train(params, address=cluster.address)
        except BaseException as e:
            outcome["error"] = e

    runner = threading.Thread(target=train, daemon=True)
    runner.start()
    deadline = time.monotonic() + 240
    while not (wait_for / "manifest.json").exists():  # written last, when the checkpoint is committed
        assert runner.is_alive(), f"run ended before the checkpoint: {outcome}"
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.2)
    return runner, outcome


def test_second_node_killed_mid_run_elastic_restart(cluster: LoopbackCluster, shards_glob: str, tmp_path: Path) -> None:
    """Elastic (min_workers 1): the group restarts with the one worker the head still has room for."""
    steps, ckpt = 60, 20  # the kill comes at the first checkpoint: 40 steps after it are ample to see the restart
    params = _params(
        tmp_path, shards_glob, f"train.steps={steps}", f"train.ckpt_every={ckpt}", "train.min_workers=1", "train.max_failures=2"
    )
    runner, outcome = _train_in_background(params, cluster, tmp_path / "train" / "checkpoints" / f"step-{ckpt:08d}")
    nodes = _node_ids()
    before = _train_workers()
    assert {w["node_id"] for w in before} == set(nodes.values())  # spread over both nodes before the kill
    killed = cluster.kill_second_node()
    t_kill = time.monotonic()
    runner.join(timeout=240)
    assert not runner.is_alive(), "training did not finish within 240 s of the node kill"
    assert "error" not in outcome, f"run failed after the node kill: {outcome.get('error')!r}"
    recovery_s = time.monotonic() - t_kill

    rows = _metrics(tmp_path)
    assert rows[-1]["step"] == steps
    resumed = {r.get("resumed_from") for r in rows} - {None}
    assert len(resumed) == 1 and ckpt <= resumed.pop() < steps  # resumed from a checkpoint taken before the kill
    assert Path(outcome["model"], "model.safetensors").exists()
    after = [w for w in _train_workers() if w["pid"] not in {b["pid"] for b in before}]
    assert after and {w["node_id"] for w in after} == {nodes["head"]}  # restarted on the surviving node only
    print(f"killed {len(killed)} processes of the second node; run finished {recovery_s:.1f} s later on 1 worker")


def test_second_node_replaced_fixed_size_waits_then_resumes(cluster: LoopbackCluster, shards_glob: str, tmp_path: Path) -> None:
    """Fixed size (min_workers 0), DeepSpeed ZeRO-2: no progress while 2 workers do not fit; a replacement node resumes it."""
    steps, ckpt = 60, 20
    params = _params(
        tmp_path,
        shards_glob,
        "train.strategy=deepspeed",
        "train.zero_stage=2",
        f"train.steps={steps}",
        f"train.ckpt_every={ckpt}",
        "train.max_failures=2",
    )
    runner, outcome = _train_in_background(params, cluster, tmp_path / "train" / "checkpoints" / f"step-{ckpt:08d}")
    old = _node_ids()["second"]
    before = {w["pid"] for w in _train_workers()}
    cluster.kill_second_node()
    time.sleep(35)  # > the 20 s worker-group start timeout: at least one restart attempt has failed by now
    assert runner.is_alive(), f"the run ended instead of waiting for capacity: {outcome}"
    assert not [w for w in _train_workers() if w["pid"] not in before and w["state"] == "ALIVE"]  # nothing trains
    cluster.add_second_node()
    t_join = time.monotonic()
    runner.join(timeout=240)
    assert not runner.is_alive(), "training did not finish within 240 s of the replacement node"
    assert "error" not in outcome, f"run failed: {outcome.get('error')!r}"
    nodes = _node_ids()
    assert nodes["second"] != old  # a new machine, not the old one back
    after = [w for w in _train_workers() if w["pid"] not in before]
    assert {w["node_id"] for w in after} == {nodes["head"], nodes["second"]}  # 2 workers again, one per node
    rows = _metrics(tmp_path)
    assert rows[-1]["step"] == steps
    resumed = {r.get("resumed_from") for r in rows} - {None}
    assert resumed and min(resumed) >= ckpt  # resumed from a checkpoint, not from scratch
    assert Path(outcome["model"], "model.safetensors").exists()
    print(f"replacement node joined; run resumed from step {min(resumed)} and finished {time.monotonic() - t_join:.1f} s later")
