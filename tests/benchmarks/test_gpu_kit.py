"""The GPU kit stays runnable: its CPU dry run passes every step, and its wheel folder builds under 60 MiB."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.smoke


def test_cpu_dry_run_passes_every_step(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PY": sys.executable, "TMPDIR": str(tmp_path)}
    env.pop("CLIP_GPU_DRY_RUN", None)
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu-dry-run"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    log = (out / "kit.log").read_text() if (out / "kit.log").exists() else ""
    assert proc.returncode == 0, proc.stdout[-3000:] + log[-5000:]
    summary = (out / "summary.md").read_text()
    for step in ("install", "env", "tests", "train", "eval", "ds"):
        assert f"| {step} | ok |" in summary, summary
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8, files  # what the device tool brings back from $OUT
    assert "passed" in summary and " failed" not in summary
    tests = (out / "gpu_tests.xml").read_text()
    assert 'tests="9"' in tests and 'failures="0"' in tests and 'errors="0"' in tests  # fp16 skips on CPU
    train = json.loads((out / "train.json").read_text())
    whos = {(r["mode"], r["who"]) for r in train["rows"]}
    assert whos == {(m, w) for m in ("compute", "data") for w in ("ddp", "deepspeed", "open_clip")}
    assert all(r["samples_per_s"] > 0 for r in train["rows"]) and train["flops_per_step"] > 0
    ev = json.loads((out / "eval.json").read_text())
    assert ev["top1_agreement_with_clip_benchmark"] > 0.9  # the same model through both loops
    ds = json.loads((out / "ds.json").read_text())
    assert ds["rows"][-1]["variant"] == "ZeRO-3" and len(ds["rows"]) == 9


def test_dry_run_blocks_what_the_gpu_machine_lacks() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "benchmarks" / "gpu_kit_site")}
    proc = subprocess.run([sys.executable, "-c", "import ray"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "absent on the GPU machine" in proc.stderr


def test_gpu_wheels_build_under_the_limit(tmp_path: Path) -> None:
    d = tmp_path / "whl"
    env = {**os.environ, "GPU_WHEELS_DIR": str(d), "PY": sys.executable}
    proc = subprocess.run(["bash", "benchmarks/gpu_wheels.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = (d / "MANIFEST.txt").read_text().split()
    for pkg in ("webdataset", "deepspeed", "pydantic_core", "open_clip_torch", "clip_benchmark"):
        assert any(n.startswith(pkg + "-") for n in names), (pkg, names)
    assert any("cp312" in n for n in names if n.startswith("pydantic_core"))
    assert sum(p.stat().st_size for p in d.iterdir()) < 60 * 2**20
