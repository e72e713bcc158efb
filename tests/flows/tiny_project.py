"""A tiny copy of the project (code, dvc.yaml, params shrunk to seconds) for end-to-end smoke tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COPY = ["clip_core", "components", "flows", "infra", "dvc.yaml", "params.yaml", "pyproject.toml"]

TINY = {
    "data.synth.n_train": 1200,
    "data.synth.samples_per_shard": 300,
    "data.synth.n_eval_per_class": 6,
    "data.synth.n_compositional_per_pair": 3,
    "data.synth.n_retrieval": 40,
    "data.synth.n_planted_duplicates": 4,
    "data.ingest.samples_per_shard": 400,
    "data.ingest.num_workers": 0,
    "data.ingest.progress": False,
    "train.steps": 16,
    "train.warmup": 2,
    "train.batch_size": 32,
    "train.workers": 1,
    "train.strategy": "ddp",
    "train.log_every": 4,
    "train.ckpt_every": 8,
    "evaluate.fewshot_ks": [1],
    "evaluate.probe_c_steps": 5,  # 3 coarse points, then one halving: the search still refines
    "evaluate.probe_c_init_steps": 3,
    "evaluate.progress": False,
}


def env() -> dict[str, str]:
    """The venv's bin first on PATH (for `clip-pipeline`, `dvc`, `prefect`), quiet telemetry."""
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    e.update(DO_NOT_TRACK="1", RAY_USAGE_STATS_ENABLED="0", GX_ANALYTICS_ENABLED="false", DVC_NO_ANALYTICS="1")
    return e


def set_param(params: dict, dotted: str, value: object) -> None:
    """Set `a.b.c` in a nested dict."""
    *parents, leaf = dotted.split(".")
    node = params
    for p in parents:
        node = node[p]
    node[leaf] = value


def make_tiny_project(dest: Path, **overrides: object) -> Path:
    """Copy the code and dvc.yaml to `dest`, write shrunk params.yaml, `dvc init --no-scm`; returns dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for k, v in {**TINY, **overrides}.items():
        set_param(params, k, v)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "init", "--no-scm", "-q"], dest)
    return dest


def run(cmd: list[str], cwd: Path, timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in `cwd` with the venv's environment; on failure the output is in the assertion."""
    p = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p
