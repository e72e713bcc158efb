"""A real local Prefect server, the deployments served by `clip-pipeline serve`, and
`prefect deployment run clip-pipeline/full` completing with a report and a registered model."""

import contextlib
import json
import os
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


def test_deployment_run_full_completes(tmp_path: Path) -> None:
    """README's way: the server script (API credential on), `clip-pipeline serve`, `prefect deployment run`."""
    proj = make_tiny_project(tmp_path / "proj")
    e = env()
    secret = "planted-secret-7f3a9c1e"  # credentials live in the environment and must never reach outputs
    e.update(AWS_SECRET_ACCESS_KEY=secret, AWS_ACCESS_KEY_ID=secret + "-id")
    serve = None
    with script_server(proj / "infra" / "scripts" / "prefect_server.sh", tmp_path / "prefect-home", e) as (api, e):
        cli = {**e, **shell_exports(proj / "infra" / "scripts" / "prefect_server.sh", e)}  # the `prefect` CLI's shell
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
