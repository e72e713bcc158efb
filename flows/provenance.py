"""Run identity recorded beside every output: resolved config, data version, git revision."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import fsspec


def git_revision(cwd: str | Path = ".") -> str:
    """HEAD's commit (with '+dirty' when the tree has changes), or 'unknown' outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True
        ).stdout
        return rev + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def data_version(url: str) -> str:
    """Content hash of a dataset directory (any fsspec URL): sha256 over sorted relative paths and bytes."""
    fs, root = fsspec.core.url_to_fs(url)
    if not fs.exists(root):
        return "missing"
    h = hashlib.sha256()
    files = sorted(fs.find(root))
    for f in files:
        h.update(f[len(root) :].encode())
        with fs.open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return f"sha256:{h.hexdigest()[:16]}:{len(files)}files"


def write_run_info(out_dir: str, params: dict[str, Any], data_url: str | None = None, **extra: Any) -> dict[str, Any]:
    """Write `run_info.json` into a stage's output directory and return it."""
    info = {
        "time": dt.datetime.now(dt.timezone.utc).isoformat(),
        "git_revision": git_revision(),
        "data_version": data_version(data_url) if data_url else None,
        "params": params,
        **extra,
    }
    fs, path = fsspec.core.url_to_fs(out_dir)
    fs.makedirs(path, exist_ok=True)
    with fs.open(f"{path}/run_info.json", "w") as f:
        json.dump(info, f, indent=2, default=str)
    return info
