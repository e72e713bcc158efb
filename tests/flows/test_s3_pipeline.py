"""The whole pipeline with `pipeline.out_root` and `data.raw_root` on s3:// (a moto S3 server on loopback).

Credentials and the endpoint reach every process (the flow, Ray workers) only through the
environment, as they would for a real bucket; afterwards the bucket must hold every stage's
outputs and no object may contain the secret key.
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.flows.tiny_project import env, make_tiny_project

pytestmark = [pytest.mark.smoke, pytest.mark.faults]

STAGES = ["synth", "ingest", "validate", "filter", "dedup", "train", "evaluate", "audit", "bias", "register", "report"]

EXPECTED = [
    "raw/train/shard-000000.tar",
    "raw/eval/shape/manifest.csv",
    "run/run_params.yaml",
    "run/ingest/shards/shard-000000.tar",
    "run/ingest/metadata.parquet",
    "run/ingest/quarantine.parquet",
    "run/ingest/summary.json",
    "run/ingest/run_info.json",
    "run/validate/result.json",
    "run/validate/report.html",
    "run/filter/kept_keys.txt",
    "run/train/run.json",
    "run/train/metrics.jsonl",
    "run/train/metrics.csv",
    "run/train/model/model.safetensors",
    "run/train/model/model.json",
    "run/train/model/tokenizer.json",
    "run/train/model/run_info.json",
    "run/evaluate/metrics.json",
    "run/evaluate/results.html",
    "run/bias/summary.json",
    "run/bias/bias.html",
    "run/registry/registry.json",
    "run/report/report.html",
    "run/report/report.json",
    "run/report/MODEL_CARD.md",
    "run/pipeline_timings.json",
    "run/logs/pipeline.log",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def moto_s3(tmp_path: Path):
    """`moto_server` as a subprocess on 127.0.0.1 (a separate process, like a real endpoint); yields its URL."""
    port = _free_port()
    log = (tmp_path / "moto.log").open("w")
    p = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() - t0 > 30 or p.poll() is not None:
                p.kill()
                raise AssertionError(f"moto_server did not start: {(tmp_path / 'moto.log').read_text()}") from None
            time.sleep(0.2)
    yield url
    p.terminate()
    p.wait(10)


def test_whole_pipeline_on_s3(moto_s3: str, tmp_path: Path) -> None:
    import s3fs

    secret = "moto-" + secrets.token_hex(16)
    creds = {
        "AWS_ACCESS_KEY_ID": "clip-test-key",
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_s3,  # honoured by botocore (s3fs) and by pyarrow (Ray Train's storage)
    }
    fs = s3fs.S3FileSystem(key=creds["AWS_ACCESS_KEY_ID"], secret=secret, endpoint_url=moto_s3)
    fs.mkdir("bucket")
    proj = make_tiny_project(
        tmp_path / "proj",
        **{"pipeline.out_root": "s3://bucket/run", "data.raw_root": "s3://bucket/raw", "train.steps": 8},
    )
    ray_tmp = tempfile.mkdtemp(prefix="ray-s3-", dir="/tmp")  # short: Ray's socket paths must stay < 108 bytes
    e = {**env(), **creds, "PREFECT_HOME": str(tmp_path / "prefect"), "CLIP_RAY_TMPDIR": ray_tmp}
    e["RAY_memory_monitor_refresh_ms"] = "0"  # a shared CI box: other jobs' memory must not get the tiny run killed
    t0 = time.time()
    p = subprocess.run(["clip-pipeline", "run"], cwd=proj, env=e, capture_output=True, text=True, timeout=900)
    seconds = time.time() - t0
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert p.returncode == 0, f"pipeline failed after {seconds:.0f} s:\n{p.stdout[-6000:]}\n{p.stderr[-6000:]}"
    # a calm console: a line per stage, the closing table, where the report is; Ray/Prefect/library noise in the log
    console, shown = (p.stdout + p.stderr).splitlines(), f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    assert len(console) < 60 and "Started a local Ray instance" not in shown and "RayTrainWorker" not in shown, shown
    assert [line.split()[1] for line in console if line.startswith("✓ ")] == STAGES, shown
    tail = p.stdout.splitlines()[-2:]
    assert tail == ["report: s3://bucket/run/report/report.html", "full log: s3://bucket/run/logs/pipeline.log"], shown

    fs.invalidate_cache()
    objects = sorted(o.removeprefix("bucket/") for o in fs.find("bucket"))
    missing = [k for k in EXPECTED if k not in objects]
    assert not missing, f"missing in s3://bucket: {missing}\nhave: {objects}"
    log = fs.cat_file("bucket/run/logs/pipeline.log").decode()
    assert re.search(r"prefect.task_runs \[train-\w+\]: train: steps=8", log), log[-3000:]  # Prefect's run log: in the file
    assert not any(".tmp" in o for o in objects), [o for o in objects if ".tmp" in o]  # atomic publishes left nothing half
    leaked = [o for o in objects if secret.encode() in fs.cat_file(f"bucket/{o}")]
    assert not leaked, f"the secret key appears in {leaked}"
    assert not (proj / "s3:").exists() and not list(proj.glob("**/bucket"))  # nothing written to a local 's3:' dir
