"""The whole pipeline SIGKILLed during training (`dvc repro`, driver and Ray together): a re-run resumes training from
the last checkpoint and does not redo the finished stages; no Ray process of the killed run is left behind."""

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from components.train.checkpoint import CheckpointStore
from tests.flows.tiny_project import env, make_tiny_project, run
from tests.kill import kill_session, session_pids

pytestmark = [pytest.mark.faults, pytest.mark.smoke]


# Killed after the first checkpoint (step 4), resumed to step 16. Dedup runs (train depends on it) but is not
# under test: pHash candidates only, no thumbnail k-NN or pixel verification.
KILL_RUN = {"train.steps": 16, "train.ckpt_every": 4, "train.log_every": 2, "audit.use_embeddings": False, "audit.verify": False}


def _pids_mentioning(text: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text.encode() in (d / "cmdline").read_bytes():
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def _kill_after_first_checkpoint(cmd: list[str], proj: Path, e: dict[str, str], log: Path, ray_tmp: str) -> tuple[int, list[int]]:
    """Start `cmd` in its own session; once the first checkpoint commits, SIGKILL the session and that Ray's leftovers.

    Returns (the session's pid, the pids killed).
    """
    ckpts = proj / "out" / "train" / "checkpoints"
    p = subprocess.Popen(cmd, cwd=proj, env=e, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        t0 = time.time()
        while not list(ckpts.glob("step-*/manifest.json")):  # first checkpoint committed: kill now, mid-training
            assert p.poll() is None, log.read_text()[-3000:]
            assert time.time() - t0 < 600, log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        killed = kill_session(p.pid)  # SIGKILL: the driver, clip-pipeline, Ray's GCS, raylet and train workers
        p.wait()
        for pid in _pids_mentioning(ray_tmp):  # anything of that Ray outside the session
            subprocess.run(["kill", "-9", str(pid)], check=False)
    return p.pid, killed


def test_dvc_repro_killed_during_training_resumes(tmp_path: Path) -> None:
    proj = make_tiny_project(tmp_path / "proj", **KILL_RUN)
    run(["clip-pipeline", "data", "synth"], proj)
    e = env()
    ray_tmp = f"/tmp/rf-{uuid.uuid4().hex[:8]}"  # short: Ray's socket paths must stay under 107 characters
    e.update(CLIP_RAY_TMPDIR=ray_tmp, RAY_memory_monitor_refresh_ms="0")  # other jobs on a shared box must not OOM-kill ours
    log = tmp_path / "repro1.log"
    sid, killed = _kill_after_first_checkpoint(["dvc", "repro", "train"], proj, e, log, ray_tmp)
    assert sid in killed and not session_pids(sid)
    assert "Running stage 'train'" in log.read_text()
    ingest_mtimes = {f: f.stat().st_mtime_ns for f in (proj / "out" / "ingest").rglob("*") if f.is_file()}
    assert ingest_mtimes
    resume_at = CheckpointStore(str(proj / "out" / "train")).latest_good().step
    assert 0 < resume_at < 16

    again = subprocess.run(["dvc", "repro", "train"], cwd=proj, env=e, capture_output=True, text=True, timeout=900)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-4000:]
    assert "Stage 'ingest' didn't change, skipping" in out and "Stage 'validate' didn't change, skipping" in out, out[-3000:]
    assert "Running stage 'train'" in out
    assert f"(step {resume_at})" in out  # "resumed from .../step-000000NN (step NN)"
    rows = [json.loads(x) for x in (proj / "out" / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(2, 17, 2))  # history to the checkpoint kept, then continued
    assert {r.get("resumed_from") for r in rows if r["step"] > resume_at} == {resume_at}
    assert {f: f.stat().st_mtime_ns for f in ingest_mtimes} == ingest_mtimes  # ingest not redone
    assert (proj / "out" / "train" / "model" / "model.safetensors").exists()
    assert "Running stage" not in run(["dvc", "repro", "train"], proj).stdout  # and now it is recorded as done
    print(f"killed {len(killed)} processes; resumed from step {resume_at}")
    shutil.rmtree(ray_tmp, ignore_errors=True)  # the killed Ray's session files


def test_prefect_flow_killed_during_training_resumes_when_run_again(tmp_path: Path) -> None:
    """The Prefect flow (`clip-pipeline run`, driver, its temporary Prefect API and Ray all SIGKILLed) run again resumes."""
    proj = make_tiny_project(tmp_path / "proj", **KILL_RUN)
    run(["clip-pipeline", "data", "synth"], proj)
    e = env()
    ray_tmp = f"/tmp/rp-{uuid.uuid4().hex[:8]}"
    e.update(CLIP_RAY_TMPDIR=ray_tmp, RAY_memory_monitor_refresh_ms="0", PREFECT_HOME=str(tmp_path / "prefect"))
    e.update(PREFECT_SERVER_ANALYTICS_ENABLED="false")
    e.pop("PREFECT_API_URL", None)  # Prefect's temporary local API, inside the killed session
    cmd = ["clip-pipeline", "run", "--stages", "ingest", "dedup", "train"]
    sid, killed = _kill_after_first_checkpoint(cmd, proj, e, tmp_path / "flow1.log", ray_tmp)
    assert sid in killed and not session_pids(sid)
    resume_at = CheckpointStore(str(proj / "out" / "train")).latest_good().step
    assert 0 < resume_at < 16

    again = subprocess.run(cmd, cwd=proj, env=e, capture_output=True, text=True, timeout=900)  # the same flow, again
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-4000:]
    # ingest ran again; same shard names and sizes: same resume_key (the train stage's console line says so)
    assert f"resumed from step {resume_at})" in out, out[-4000:]
    rows = [json.loads(x) for x in (proj / "out" / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(2, 17, 2))
    assert {r.get("resumed_from") for r in rows if r["step"] > resume_at} == {resume_at}
    assert (proj / "out" / "train" / "model" / "model.safetensors").exists()
    print(f"killed {len(killed)} processes; flow re-run resumed from step {resume_at}")
    shutil.rmtree(ray_tmp, ignore_errors=True)
