"""A two-node Ray cluster on loopback, started with the real `ray start` CLI, for the multi-node fault tests.

Both nodes run on this machine with their own raylet (1 CPU each), so 2 one-CPU training workers
must spread over both. Every process the cluster starts is found by the cluster's private temp dir
(on its command line) or as a descendant of those, so the cluster is torn down by pid without
touching any other Ray on the machine (`ray stop` would stop them all).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
OBJECT_STORE_BYTES = 100_000_000
# The `ray` CLI of the interpreter running the tests (also when its venv is not on PATH).
RAY_CLI = shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LoopbackCluster:
    """Head (GCS + raylet, resource `head`) and a second node (raylet, resource `second`), 1 CPU each."""

    temp_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="rmn-", dir="/tmp"))  # short: socket paths
    port: int = field(default_factory=free_port)
    second_manager_port: int = 0  # set by add_second_node: how its raylet is found

    @property
    def token_path(self) -> str:
        return os.path.join(self.temp_dir, "auth_token")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        # Workers import the project from this checkout, as an installed package would on a real node.
        # The health-check settings (read by the GCS) make a dead node known in ~3 s instead of ~30 s.
        # Ray's OOM killer is off: this machine is shared, and another job's memory must not kill our workers.
        # Token authentication, as every Ray the project starts: the token lives in the cluster's temp dir (0600),
        # never in the user's ~/.ray; a driver of the cluster needs RAY_AUTH_MODE and RAY_AUTH_TOKEN_PATH too.
        env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"}
        return {
            **env,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": self.token_path,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "CLIP_TRAIN_NO_PROGRESS": "1",
            "RAY_health_check_period_ms": "1000",
            "RAY_health_check_timeout_ms": "1000",
            "RAY_health_check_failure_threshold": "3",
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_memory_monitor_refresh_ms": "0",
            # A restart that asks for more workers than the cluster can now place gives up after this long.
            "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "20",
        }

    def _ray_start(self, *args: str) -> None:
        common = ["--num-cpus=1", f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats"]
        proc = subprocess.run([RAY_CLI, "start", *args, *common], env=self.env(), capture_output=True, text=True, timeout=120)
        if proc.returncode:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")

    def start(self, second_node: bool = True) -> None:
        fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        self._ray_start(
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={self.port}",
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
            f"--temp-dir={self.temp_dir}",
            '--resources={"head": 1}',
        )
        if second_node:
            self.add_second_node()

    def add_second_node(self) -> None:
        """Start the second node (again, after a kill: a replacement machine, with a new node id)."""
        self.second_manager_port = free_port()
        self._ray_start(
            f"--address={self.address}",
            "--node-ip-address=127.0.0.1",
            f"--node-manager-port={self.second_manager_port}",
            '--resources={"second": 1}',
        )

    def processes(self) -> list[psutil.Process]:
        """Every live process of this cluster: those naming its temp dir, and all their descendants."""
        roots = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if any(self.temp_dir in a for a in (p.info["cmdline"] or [])):
                    roots.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return _with_descendants(roots)

    def second_node_processes(self) -> list[psutil.Process]:
        """The second node's raylet and everything under it (its workers, agents)."""
        flag = f"--node_manager_port={self.second_manager_port}"
        raylets = [p for p in self.processes() if p.name() == "raylet" and flag in p.cmdline()]
        if len(raylets) != 1:
            raise RuntimeError(f"expected one raylet with {flag}, found {len(raylets)}")
        return _with_descendants(raylets)

    def kill_second_node(self) -> list[int]:
        """SIGKILL the second node's raylet and its process tree, as if the machine had died; return the pids."""
        procs = self.second_node_processes()
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=10)
        return [p.pid for p in procs]

    def stop(self) -> None:
        """Kill every process of this cluster (several passes: workers can be forked while we kill) and its dir."""
        for _ in range(3):
            procs = self.processes()
            if not procs:
                break
            for p in procs:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.send_signal(signal.SIGKILL)
            psutil.wait_procs(procs, timeout=10)
            time.sleep(0.5)
        if not os.environ.get("CLIP_KEEP_RAY_LOGS"):  # set it to read the session logs of a failed test
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def _with_descendants(roots: list[psutil.Process]) -> list[psutil.Process]:
    seen: dict[int, psutil.Process] = {}
    for p in roots:
        seen[p.pid] = p
        try:
            for c in p.children(recursive=True):
                seen[c.pid] = c
        except psutil.NoSuchProcess:
            continue
    return list(seen.values())
