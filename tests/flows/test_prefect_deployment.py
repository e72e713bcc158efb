"""A real local Prefect server, the deployments served by `clip-pipeline serve`, and
`prefect deployment run clip-pipeline/full` completing with a report and a registered model."""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.flows.tiny_project import env, make_tiny_project, run

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


def test_deployment_run_full_completes(tmp_path: Path) -> None:
    proj = make_tiny_project(tmp_path / "proj")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    e = env()
    e.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_URL=api, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    secret = "planted-secret-7f3a9c1e"  # credentials live in the environment and must never reach outputs
    e.update(AWS_SECRET_ACCESS_KEY=secret, AWS_ACCESS_KEY_ID=secret + "-id")
    server = _start(["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)], proj, e, tmp_path / "server.log")
    serve = None
    try:
        _wait_healthy(api)
        serve = _start(["clip-pipeline", "serve"], proj, e, tmp_path / "serve.log")
        t0 = time.time()
        while True:  # the serving process registers the deployments
            p = subprocess.run(["prefect", "deployment", "ls"], cwd=proj, env=e, capture_output=True, text=True)
            if "full" in p.stdout and "retrain" in p.stdout:
                break
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.time() - t0 < 180, p.stdout + p.stderr
            time.sleep(2)
        out = subprocess.run(
            ["prefect", "deployment", "run", "clip-pipeline/full", "--watch", "--watch-timeout", "1500"],
            cwd=proj, env=e, capture_output=True, text=True, timeout=1600,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:] + (tmp_path / "serve.log").read_text()[-4000:]
        assert "Completed" in out.stdout + out.stderr
    finally:
        if serve is not None:
            _stop(serve)
        _stop(server)
    assert (proj / "out" / "report" / "report.html").exists()
    registry = json.loads((proj / "out" / "registry" / "registry.json").read_text())
    assert registry["champion"]["version"] == 1 and registry["entries"][0]["promoted"]
    timings = json.loads((proj / "out" / "pipeline_timings.json").read_text())
    assert {"ingest", "train", "evaluate", "report", "register", "_total"} <= set(timings)
    leaked = [p for p in (proj / "out").rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert not leaked, f"secret found in outputs: {leaked}"


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
