"""Fault-injection helpers: run Python in a child that SIGKILLs itself at a chosen point; kill a whole session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Prepended to every child: `die()` is a hard kill (no finally blocks, no atexit), as the OOM killer or a node loss.
PRELUDE = """
import os, signal
def die():
    os.kill(os.getpid(), signal.SIGKILL)
"""


def run_killed(code: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `code` (after PRELUDE) in a fresh interpreter; assert it died by SIGKILL, not by finishing or raising."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLIP_TRAIN_NO_PROGRESS": "1"}
    p = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert p.returncode == -signal.SIGKILL, f"child was not killed (rc {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def session_pids(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session id is `sid` (a child started with start_new_session=True and all it spawned)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                zombie = (d / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"  # dead, awaiting its reaper
                if not zombie and os.getsid(int(d.name)) == sid:
                    out.append(int(d.name))
            except (ProcessLookupError, PermissionError, FileNotFoundError):
                continue
    return out


def kill_session(sid: int, grace: float = 30) -> list[int]:
    """SIGKILL every process in session `sid`, one by one by pid; wait until none is left. Returns the pids killed."""
    killed = []
    t0 = time.time()
    while pids := session_pids(sid):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        if time.time() - t0 > grace:
            raise AssertionError(f"processes of session {sid} survive SIGKILL: {pids}")
        time.sleep(0.2)
    return sorted(set(killed))
