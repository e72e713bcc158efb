"""Run identity recorded beside every output: resolved config, data version, git revision."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import fsspec
import yaml

from components.io import is_remote

log = logging.getLogger(__name__)


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


_VERSIONS: dict[tuple[str, str], str] = {}  # (url, files' stat signature) -> version: one look per state per process


def data_version(url: str) -> str:
    """The content version of a dataset directory (any fsspec URL): `dvc:<md5>` of the .dvc file that tracks it (or a
    directory above it) when DVC says the workspace matches it, else `sha256:...` over its files. Remembered in this
    process while the files' names, sizes and modification times stay the same (a run asks up to three times)."""
    fs, root = fsspec.core.url_to_fs(url)
    if not fs.exists(root):
        return "missing"
    files = sorted(fs.find(root, detail=True).items())
    signature = hashlib.sha256(repr([(f, i.get("size"), i.get("mtime") or i.get("LastModified")) for f, i in files]).encode())
    key = (url, signature.hexdigest())
    if key not in _VERSIONS:
        _VERSIONS[key] = (None if is_remote(url) else dvc_version(url)) or hash_files(fs, root, [f for f, _ in files])
    return _VERSIONS[key]


def hash_files(fs: Any, root: str, files: list[str]) -> str:
    """sha256 over the sorted relative paths and bytes of `files` (under `root`)."""
    h = hashlib.sha256()
    for f in files:
        h.update(f[len(root) :].encode())
        with fs.open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return f"sha256:{h.hexdigest()[:16]}:{len(files)}files"


def dvc_version(path: str) -> str | None:
    """`dvc:<md5>` from the .dvc file whose output is `path` or a directory above it inside a DVC project, when
    `dvc status` finds that output unchanged (DVC's own state: file stats, no re-hash of unchanged files); else None."""
    target = Path(path).resolve()
    project = next((d for d in [target, *target.parents] if (d / ".dvc").is_dir()), None)
    if project is None:
        return None
    for out_dir in [target, *target.parents]:
        if out_dir == project:
            return None
        for dvcfile in sorted(f for f in out_dir.parent.glob("*.dvc") if f.is_file()):
            outs = (yaml.safe_load(dvcfile.read_text()) or {}).get("outs") or []
            md5 = next((o.get("md5") for o in outs if (dvcfile.parent / o.get("path", "")).resolve() == out_dir), None)
            if md5:
                return f"dvc:{md5}" if _dvc_current(project, dvcfile) else None
    return None


def _dvc_current(project: Path, dvcfile: Path) -> bool:
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(project)) as repo:
            return not repo.status(targets=[str(dvcfile)])
    except (DvcException, OSError) as e:
        log.warning("dvc status %s failed (%s): hashing the data instead", dvcfile, e)
        return False


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
