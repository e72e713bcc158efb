"""The Prefect server killed and restarted (same PREFECT_HOME, same SQLite database, same port) while a flow run is in
flight: the run finishes and its Completed state, and its task runs, are recorded in the restarted server."""

import time
from pathlib import Path

import httpx
import pytest

from tests.flows.test_prefect_deployment import _free_port, _start, _stop, _wait_healthy
from tests.flows.tiny_project import env
from tests.kill import kill_session

pytestmark = [pytest.mark.faults, pytest.mark.smoke]

FLOW = """
import sys, time
from pathlib import Path
from prefect import flow, task

@task
def mark(path: str) -> str:
    Path(path).write_text("done")
    return path

@flow(name="restart-probe")
def probe(d: str) -> str:
    mark(f"{d}/started")
    t0 = time.time()
    while not Path(f"{d}/go").exists():  # in flight until the test has killed (and maybe restarted) the server
        time.sleep(0.1)
        if time.time() - t0 > 300:
            raise TimeoutError("never released")
    return mark(f"{d}/finished")

if __name__ == "__main__":
    probe(sys.argv[1])
"""


def _wait_for(path: Path, proc, log: Path, timeout: float = 120) -> None:
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.time() - t0 < timeout, log.read_text()[-3000:]
        time.sleep(0.1)


@pytest.mark.parametrize("down_when", ["between_tasks", "at_completion"])
def test_server_restart_mid_run_records_completed(tmp_path: Path, down_when: str) -> None:
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    e = env()
    e.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_URL=api, PREFECT_SERVER_ANALYTICS_ENABLED="false",
             PREFECT_UI_ENABLED="false")  # fmt: skip
    server_cmd = ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    (tmp_path / "probe.py").write_text(FLOW)
    server = _start(server_cmd, tmp_path, e, tmp_path / "server1.log")
    run = None
    try:
        _wait_healthy(api)
        run = _start(["python", "probe.py", str(tmp_path)], tmp_path, e, tmp_path / "flow.log")
        _wait_for(tmp_path / "started", run, tmp_path / "flow.log")  # the run is in flight, its first task done
        time.sleep(1)  # let the task's state events reach the server
        kill_session(server.pid)  # SIGKILL: a crash, not a clean shutdown
        server.wait()
        if down_when == "at_completion":
            (tmp_path / "go").write_text("")  # the run finishes while the server is down: the client must retry
            _wait_for(tmp_path / "finished", run, tmp_path / "flow.log")
        t_down = time.time()
        server = _start(server_cmd, tmp_path, e, tmp_path / "server2.log")
        _wait_healthy(api)
        downtime = time.time() - t_down
        (tmp_path / "go").write_text("")
        rc = run.wait(timeout=300)
        assert rc == 0, (tmp_path / "flow.log").read_text()[-4000:]
        runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).json()
        assert [r["state_type"] for r in runs] == ["COMPLETED"], (downtime, runs)
        t0 = time.time()
        while True:  # task-run states arrive as events, recorded asynchronously
            tasks = httpx.post(f"{api}/task_runs/filter", json={}, timeout=10).json()
            states = sorted(t["state_type"] for t in tasks)
            if states == ["COMPLETED", "COMPLETED"] or time.time() - t0 > 30:
                break
            time.sleep(1)
        assert states == ["COMPLETED", "COMPLETED"], (downtime, tasks)
        print(f"server down {downtime:.1f} s; flow run {runs[0]['state_name']}")
    finally:
        if run is not None and run.poll() is None:
            _stop(run)
        _stop(server)
