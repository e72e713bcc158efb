"""A real local Prefect server as `infra/scripts/prefect_server.sh` starts it (SQLite, API credential), one for the
module: the deployments served by `clip-pipeline serve` and `prefect deployment run clip-pipeline/full` completing
with a report and a registered model; the API refusing requests without the credential; and the server under load
(20 probe flow runs and 3 pipeline runs into one registry at once)."""

import base64
import contextlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.flows.tiny_project import env, make_tiny_project, run

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "scripts" / "prefect_server.sh"
N_PROBES = 20
METRIC = "shape/zeroshot_classification/acc1"
ACCS = [0.5, 0.7, 0.6]  # whatever order they register in, the 0.7 model ends champion

pytestmark = pytest.mark.smoke


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, timeout: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"Prefect server at {url} not healthy after {timeout} s")


def _start(cmd: list[str], cwd: Path, e: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env=e, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


@contextlib.contextmanager
def script_server(script: Path, home: Path, e: dict) -> Iterator[tuple[str, dict]]:
    """`infra/scripts/prefect_server.sh start` (credential on, UI off) with its own PREFECT_HOME and a free port.

    Yields the API URL and the environment for the project's commands (PREFECT_HOME, PREFECT_API_URL; not the
    credential: they find it themselves). Stops the server by its session, whatever happened."""
    e = {k: v for k, v in e.items() if k not in ("PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_AUTH")}
    port = _free_port()
    e.update(PREFECT_HOME=str(home), PREFECT_PORT=str(port), VENV_BIN=str(Path(sys.executable).parent),
             PREFECT_UI_ENABLED="false", PREFECT_SERVER_ANALYTICS_ENABLED="false")  # fmt: skip
    p = subprocess.run(["bash", str(script), "start"], env=e, capture_output=True, text=True, timeout=180, start_new_session=True)
    pid = int((home / "server.pid").read_text()) if (home / "server.pid").exists() else None
    try:
        log = (home / "server.log").read_text() if (home / "server.log").exists() else ""
        assert p.returncode == 0, p.stdout + p.stderr + log
        api = f"http://127.0.0.1:{port}/api"
        yield api, {**e, "PREFECT_API_URL": api}
    finally:
        if pid is not None:  # the server and its children share the session the script started
            with contextlib.suppress(ProcessLookupError):
                pgid = os.getpgid(pid)
                os.killpg(pgid, signal.SIGTERM)
                for _ in range(40):
                    os.kill(pid, 0)
                    time.sleep(0.5)
                os.killpg(pgid, signal.SIGKILL)


def shell_exports(script: Path, e: dict) -> dict[str, str]:
    """What `eval "$(prefect_server.sh env)"` exports (README: how a shell's `prefect` CLI gets the credential)."""
    out = subprocess.run(["bash", str(script), "env"], env=e, capture_output=True, text=True, check=True).stdout
    return dict(line.removeprefix("export ").replace("'", "").split("=", 1) for line in out.splitlines())


@pytest.fixture(scope="module")
def local_server(tmp_path_factory) -> Iterator[tuple[str, dict, Path]]:
    """The project's server script with its own PREFECT_HOME; yields (API URL, env for clients, PREFECT_HOME)."""
    home = tmp_path_factory.mktemp("prefect") / "home"
    with script_server(SCRIPT, home, env()) as (api, e):
        yield api, e, home


def test_deployment_run_full_completes(local_server, tmp_path: Path) -> None:
    """README's way: the server script (API credential on), `clip-pipeline serve`, `prefect deployment run`."""
    api, e, _ = local_server
    proj = make_tiny_project(tmp_path / "proj")
    secret = "planted-secret-7f3a9c1e"  # credentials live in the environment and must never reach outputs
    e = {**e, "AWS_SECRET_ACCESS_KEY": secret, "AWS_ACCESS_KEY_ID": secret + "-id"}
    serve = None
    cli = {**e, **shell_exports(SCRIPT, e)}  # the `prefect` CLI's shell after `eval "$(prefect_server.sh env)"`
    assert cli["PREFECT_API_URL"] == api and cli["PREFECT_API_AUTH_STRING"].startswith("clip:")
    try:
        serve = _start(["clip-pipeline", "serve"], proj, e, tmp_path / "serve.log")
        t0 = time.time()
        while True:  # the serving process registers the deployments
            p = subprocess.run(["prefect", "deployment", "ls"], cwd=proj, env=cli, capture_output=True, text=True)
            if "full" in p.stdout and "retrain" in p.stdout:
                break
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.time() - t0 < 180, p.stdout + p.stderr
            time.sleep(2)
        out = subprocess.run(
            ["prefect", "deployment", "run", "clip-pipeline/full", "--watch", "--watch-timeout", "1500"],
            cwd=proj, env=cli, capture_output=True, text=True, timeout=1600,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:] + (tmp_path / "serve.log").read_text()[-4000:]
        assert "Completed" in out.stdout + out.stderr
    finally:
        if serve is not None:
            _stop(serve)
    assert (proj / "out" / "report" / "report.html").exists()
    registry = json.loads((proj / "out" / "registry" / "registry.json").read_text())
    assert registry["champion"]["version"] == 1 and registry["entries"][0]["promoted"]
    timings = json.loads((proj / "out" / "pipeline_timings.json").read_text())
    assert {"ingest", "train", "evaluate", "report", "register", "_total"} <= set(timings)
    leaked = [p for p in (proj / "out").rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert not leaked, f"secret found in outputs: {leaked}"
    # Modes: what a plain write under this umask gives (no world-writable output, nothing forced to another mode).
    mask = os.umask(0o022)
    os.umask(mask)
    modes = {str(p.relative_to(proj)): stat.S_IMODE(p.stat().st_mode) for p in (proj / "out").rglob("*")}
    assert not {p: oct(m) for p, m in modes.items() if m & 0o002}, "world-writable outputs"
    for rel in ["out/train/model/model.safetensors", "out/registry/registry.json", "out/registry/models/v1/model.safetensors",
                "out/evaluate/metrics.json", "out/report/report.html"]:  # fmt: skip
        assert modes[rel] == 0o666 & ~mask, (rel, oct(modes[rel]))


def test_scheduled_retrain_skips_when_data_unchanged(tmp_path: Path) -> None:
    """The `retrain` deployment's mode: with a champion trained on the current data, nothing runs."""
    proj = make_tiny_project(tmp_path / "proj")
    e_home = {"PREFECT_HOME": str(tmp_path / "prefect-home")}
    os.environ.update(e_home)
    run(["clip-pipeline", "data", "synth"], proj)
    from components.registry import RegistryConfig, register_model
    from flows.params import load_params
    from flows.provenance import data_version

    params = load_params(proj / "params.yaml")
    reg = proj / "out" / "registry" / "registry.json"
    register_model(str(reg), "m", {"shape/zeroshot_classification/acc1": 0.5}, RegistryConfig(),
                   data_version=data_version(str(proj / "data" / "raw")))  # fmt: skip
    cwd = os.getcwd()
    os.chdir(proj)
    try:
        from flows import stages

        changed, reason = stages.data_changed(params)
        assert not changed and "unchanged" in reason
        (proj / "data" / "raw" / "train" / "extra.txt").write_text("new data")
        changed, reason = stages.data_changed(params)
        assert changed and "data changed" in reason
    finally:
        os.chdir(cwd)


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


def _auth(home: Path) -> dict[str, str]:
    cred = (home / "api_auth").read_text().strip()
    return {"Authorization": "Basic " + base64.b64encode(cred.encode()).decode()}


@pytest.mark.faults
def test_api_needs_the_credential_health_stays_open(local_server) -> None:
    api, _, home = local_server
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


@pytest.mark.faults
def test_20_probe_runs_and_3_pipeline_runs_at_once(local_server, tmp_path: Path) -> None:
    """Every run COMPLETED with its task runs, no `database is locked`, the registry holds exactly the promotions.

    The pipeline runs are the register stage alone (inputs planted per output root): the smallest run of the
    `clip-pipeline` flow that still promotes models."""
    api, e, home = local_server
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

    def query(path: str, body: dict) -> list[dict]:
        r = httpx.post(f"{api}/{path}", json={**body, "limit": 200}, headers=headers, timeout=30)  # 200: the API's max
        r.raise_for_status()
        return r.json()

    probe_flow = {f["id"] for f in query("flows/filter", {"flows": {"name": {"any_": ["load-probe"]}}})}
    runs = query("flow_runs/filter", {})
    mine = [r for r in runs if r["flow_id"] in probe_flow or str(tmp_path) in json.dumps(r["parameters"])]
    assert len(mine) == N_PROBES + len(ACCS)
    assert {r["state_type"] for r in mine} == {"COMPLETED"}, [(r["name"], r["state_type"]) for r in mine]
    tasks = query("task_runs/filter", {"flow_runs": {"id": {"any_": [r["id"] for r in mine]}}})
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
        m = re.search(r"register .*?(promoted as v(\d+)|v(\d+) not promoted)", text[f"run{i}"])  # the stage's line
        assert m, text[f"run{i}"][-3000:]
        reported[int(m.group(2) or m.group(3))] = m.group(2) is not None
    assert reported == {e["version"]: e["promoted"] for e in reg["entries"]}
    assert reg["champion"]["metrics"][METRIC] == max(ACCS)
    archived = {int(p.name[1:]) for p in (registry.parent / "models").iterdir()}
    assert archived == {v for v, promoted in reported.items() if promoted}
