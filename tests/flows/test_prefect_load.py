"""The local Prefect server as `infra/scripts/prefect_server.sh` starts it (SQLite, API credential) under load.

One server for the module: an unauthenticated request is refused (401) while /health stays open; then 20 probe
flow runs at once plus 3 concurrent `clip-pipeline run`s registering into one shared registry all end COMPLETED
with their task runs, no `database is locked` surfaces, and the registry holds exactly the versions the runs
promoted. The pipeline runs are the register stage alone (inputs planted per output root): the smallest run of
the `clip-pipeline` flow that still promotes models.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.flows.test_prefect_deployment import _free_port
from tests.flows.tiny_project import env

pytestmark = [pytest.mark.faults, pytest.mark.smoke]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "scripts" / "prefect_server.sh"
N_PROBES = 20
METRIC = "shape/zeroshot_classification/acc1"
ACCS = [0.5, 0.7, 0.6]  # whatever order they register in, the 0.7 model ends champion

# 20 flow runs of a probe flow at once (threads: one process, 20 API clients); each run has two task runs.
PROBE = """
import sys
from concurrent.futures import ThreadPoolExecutor
from flows.prefect_auth import use_local_credential

assert use_local_credential() is not None  # the server's credential file, found through PREFECT_HOME
from prefect import flow, task

@task
def square(x: int) -> int:
    return x * x

@flow(name="load-probe")
def probe(i: int) -> int:
    return square(i) + square(i + 1)

with ThreadPoolExecutor(int(sys.argv[1])) as pool:
    results = list(pool.map(probe, range(int(sys.argv[1]))))
assert results == [i * i + (i + 1) ** 2 for i in range(int(sys.argv[1]))], results
print("probes done")
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The project's server script, with its own PREFECT_HOME and port; yields (api url, env for clients)."""
    home = tmp_path_factory.mktemp("prefect") / "home"
    port = _free_port()
    e = env()
    e.update(PREFECT_HOME=str(home), PREFECT_PORT=str(port), VENV_BIN=str(Path(sys.executable).parent),
             PREFECT_UI_ENABLED="false", PREFECT_SERVER_ANALYTICS_ENABLED="false")  # fmt: skip
    for k in ("PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_AUTH", "PREFECT_API_URL"):
        e.pop(k, None)
    p = subprocess.run(["bash", str(SCRIPT), "start"], env=e, capture_output=True, text=True, timeout=180, start_new_session=True)
    pid = int((home / "server.pid").read_text()) if (home / "server.pid").exists() else None
    try:
        log = (home / "server.log").read_text() if (home / "server.log").exists() else ""
        assert p.returncode == 0, p.stdout + p.stderr + log
        exports = subprocess.run(["bash", str(SCRIPT), "env"], env=e, capture_output=True, text=True, check=True).stdout
        api = f"http://127.0.0.1:{port}/api"
        assert f"export PREFECT_API_URL={api}" in exports and "PREFECT_API_AUTH_STRING=" in exports
        e["PREFECT_API_URL"] = api  # not the credential: the project's commands find it by themselves
        yield api, e, home
    finally:
        if pid is not None:  # the server and its children share the session the script started
            try:
                os.killpg(os.getpgid(pid), signal.SIGTERM)
                for _ in range(40):
                    os.kill(pid, 0)
                    time.sleep(0.5)
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _auth(home: Path) -> dict[str, str]:
    cred = (home / "api_auth").read_text().strip()
    return {"Authorization": "Basic " + base64.b64encode(cred.encode()).decode()}


def test_api_needs_the_credential_health_stays_open(server) -> None:
    api, _, home = server
    cred = home / "api_auth"
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600 and stat.S_IMODE(home.stat().st_mode) == 0o700
    assert re.fullmatch(r"clip:[0-9a-f]{64}", cred.read_text())
    assert httpx.get(f"{api}/health", timeout=10).status_code == 200
    assert httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).status_code == 401
    wrong = {"Authorization": "Basic " + base64.b64encode(b"clip:guess").decode()}
    assert httpx.post(f"{api}/flow_runs/filter", json={}, headers=wrong, timeout=10).status_code == 401
    assert httpx.post(f"{api}/flow_runs/filter", json={}, headers=_auth(home), timeout=10).status_code == 200


def _plant_register_inputs(out: Path, acc: float) -> None:
    """What the register stage reads: OUT/evaluate/metrics.json and a model directory to archive."""
    (out / "evaluate").mkdir(parents=True)
    (out / "evaluate" / "metrics.json").write_text(json.dumps({METRIC: acc}))
    (out / "train" / "model").mkdir(parents=True)
    (out / "train" / "model" / "model.safetensors").write_bytes(f"weights {acc}".encode())


def test_20_probe_runs_and_3_pipeline_runs_at_once(server, tmp_path: Path) -> None:
    api, e, home = server
    registry = tmp_path / "registry" / "registry.json"
    e = {**e, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), e.get("PYTHONPATH")]))}
    logs = {}
    procs = {}
    for i, acc in enumerate(ACCS):
        out = tmp_path / f"out{i}"
        _plant_register_inputs(out, acc)
        cmd = ["clip-pipeline", "--params", str(ROOT / "params.yaml"), "--set", f"pipeline.out_root={out}",
               "--set", f"registry.path={registry}", "run", "--stages", "register"]  # fmt: skip
        logs[f"run{i}"] = tmp_path / f"run{i}.log"
        procs[f"run{i}"] = subprocess.Popen(cmd, cwd=tmp_path, env=e, stdout=logs[f"run{i}"].open("w"), stderr=subprocess.STDOUT)
    (tmp_path / "probe.py").write_text(PROBE)
    logs["probe"] = tmp_path / "probe.log"
    procs["probe"] = subprocess.Popen([sys.executable, str(tmp_path / "probe.py"), str(N_PROBES)], cwd=tmp_path, env=e,
                                      stdout=logs["probe"].open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    for name, p in procs.items():
        assert p.wait(timeout=300) == 0, f"{name}:\n{logs[name].read_text()[-4000:]}"
    text = {name: log.read_text() for name, log in logs.items()}
    text["server"] = (home / "server.log").read_text()
    for name, t in text.items():
        assert "database is locked" not in t, f"{name}: {t[-4000:]}"

    headers = _auth(home)
    runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 200}, headers=headers, timeout=30).json()
    mine = [r for r in runs if r["name"]]  # every run of this server is one of ours
    assert len(mine) == N_PROBES + len(ACCS)
    assert {r["state_type"] for r in mine} == {"COMPLETED"}, [(r["name"], r["state_type"]) for r in mine]
    tasks = httpx.post(f"{api}/task_runs/filter", json={"limit": 200}, headers=headers, timeout=30).json()
    per_run: dict[str, list[str]] = {}
    for t in tasks:
        per_run.setdefault(t["flow_run_id"], []).append(t["state_type"])
    for r in mine:
        expected = 2 if r["parameters"].get("i") is not None else 1  # a probe: two squares; a pipeline run: register
        assert per_run.get(r["id"]) == ["COMPLETED"] * expected, (r["name"], per_run.get(r["id"]))

    # The registry: one entry per run with distinct versions 1..3, and exactly the promotions the runs reported.
    reg = json.loads(registry.read_text())
    assert sorted(e["version"] for e in reg["entries"]) == [1, 2, 3]
    reported = {}
    for i in range(len(ACCS)):
        m = re.search(r"'promoted': (True|False), 'version': (\d+)", text[f"run{i}"])
        assert m, text[f"run{i}"][-3000:]
        reported[int(m.group(2))] = m.group(1) == "True"
    assert reported == {e["version"]: e["promoted"] for e in reg["entries"]}
    assert reg["champion"]["metrics"][METRIC] == max(ACCS)
    archived = {int(p.name[1:]) for p in (registry.parent / "models").iterdir()}
    assert archived == {v for v, promoted in reported.items() if promoted}
