"""Checkpoints on any fsspec URL: staged upload, commit by manifest with checksums, verify on load, prune.

Layout under `<storage>/checkpoints/`:
    step-00000050.tmp/   staging: every rank uploads its files here
    step-00000050/       committed: moved from staging, then `manifest.json` (sha256 of every file)
                         is written last. A directory without a manifest, or whose files do not
                         match it, is not a checkpoint: loading skips it and falls back to the
                         previous good one. Object stores have no atomic directory rename, so the
                         manifest is the commit marker; on local disk the move is a rename.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


class CorruptCheckpointError(RuntimeError):
    """A committed checkpoint whose files do not match its manifest."""


@dataclass(frozen=True)
class CheckpointInfo:
    """A committed checkpoint: its URL, step and the metric it was ranked by (for keep-best)."""

    url: str
    step: int
    meta: dict[str, Any]

    @property
    def metric(self) -> float | None:
        return self.meta.get("metric")


def sha256_file(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """Hex sha256 of a file read through `fs` in 1 MiB chunks."""
    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# Settings that may change between a run and its resumption without changing the trajectory.
RESUME_SAFE_KEYS = (
    "log_every",
    "eval_every",
    "eval_dataset",
    "max_failures",
    "min_workers",
    "keep_last",
    "tensorboard",
    "storage_path",
)


class CheckpointStore:
    """Checkpoint directories under `<root_url>/checkpoints` on any fsspec filesystem."""

    def __init__(self, root_url: str):
        self.fs, root = fsspec.core.url_to_fs(root_url)
        self.protocol = root_url.split("://", 1)[0] + "://" if "://" in root_url else ""
        self.root = posixpath.join(root, "checkpoints")

    def _dir(self, step: int, staging: bool = False) -> str:
        return posixpath.join(self.root, f"step-{step:08d}" + (".tmp" if staging else ""))

    def url(self, step: int) -> str:
        """The committed checkpoint's URL (with protocol) for messages and results."""
        return self.protocol + self._dir(step) if self.protocol not in ("", "file://") else self._dir(step)

    def upload(self, local_dir: str | Path, step: int) -> None:
        """Copy every file under `local_dir` into the staging directory of `step` (any rank may call)."""
        local_dir = Path(local_dir)
        staging = self._dir(step, staging=True)
        for p in sorted(local_dir.rglob("*")):
            if p.is_file():
                dest = posixpath.join(staging, p.relative_to(local_dir).as_posix())
                self.fs.makedirs(posixpath.dirname(dest), exist_ok=True)
                self.fs.put_file(str(p), dest)

    def commit(self, step: int, meta: dict[str, Any]) -> CheckpointInfo:
        """Move staging to its final name and write the manifest last (rank 0, after all uploads)."""
        staging, final = self._dir(step, staging=True), self._dir(step)
        if self.fs.exists(final):
            self.fs.rm(final, recursive=True)
        self.fs.mv(staging, final, recursive=True)
        files = {posixpath.relpath(p, final): sha256_file(self.fs, p) for p in self._files(final)}
        manifest = {"step": step, "files": files, **meta}
        self.fs.pipe_file(posixpath.join(final, MANIFEST), json.dumps(manifest, indent=2).encode())
        return CheckpointInfo(self.url(step), step, manifest)

    def _files(self, d: str) -> list[str]:
        return sorted(p for p in self.fs.find(d) if posixpath.basename(p) != MANIFEST)

    def list(self) -> list[CheckpointInfo]:
        """Committed checkpoints (manifest present), oldest first. Checksums are not checked here."""
        if not self.fs.exists(self.root):
            return []
        out = []
        for d in self.fs.ls(self.root, detail=False):
            name = posixpath.basename(d.rstrip("/"))
            if not name.startswith("step-") or name.endswith(".tmp"):
                continue
            mpath = posixpath.join(self._dir(int(name[5:])), MANIFEST)
            if self.fs.exists(mpath):
                meta = json.loads(self.fs.cat_file(mpath))
                out.append(CheckpointInfo(self.url(meta["step"]), meta["step"], meta))
        return sorted(out, key=lambda c: c.step)

    def verify(self, info: CheckpointInfo) -> None:
        """Raise CorruptCheckpointError naming the first file that is missing or differs from the manifest."""
        d = self._dir(info.step)
        for rel, digest in info.meta["files"].items():
            path = posixpath.join(d, rel)
            if not self.fs.exists(path):
                raise CorruptCheckpointError(f"{self.url(info.step)}: {rel} listed in the manifest is missing")
            if sha256_file(self.fs, path) != digest:
                raise CorruptCheckpointError(f"{self.url(info.step)}: {rel} does not match its sha256 in the manifest")

    def latest_good(self) -> CheckpointInfo | None:
        """The newest checkpoint that verifies; corrupt ones are logged and skipped."""
        for info in reversed(self.list()):
            try:
                self.verify(info)
                return info
            except CorruptCheckpointError as e:
                log.error("skipping corrupt checkpoint: %s; falling back to the previous one", e)
        return None

    def set_aside_if_incompatible(self, train_cfg: dict[str, Any], ignore: tuple[str, ...] = RESUME_SAFE_KEYS) -> str | None:
        """Move checkpoints written under another training config out of the way, so a changed
        config starts fresh instead of resuming someone else's run. Returns where they went."""
        info = self.latest_good()
        if info is None:
            return None
        train_cfg = json.loads(json.dumps(train_cfg))  # tuples -> lists, as stored
        meta_path = posixpath.join(self._dir(info.step), "train_meta.json")
        old = json.loads(self.fs.cat_file(meta_path)) if self.fs.exists(meta_path) else {}
        old_cfg = old.get("config", {})
        differs = sorted(k for k in set(old_cfg) | set(train_cfg) if k not in ignore and old_cfg.get(k) != train_cfg.get(k))
        if not differs:
            return None
        dest = f"{self.root}.stale-{int(time.time())}"
        self.fs.mv(self.root, dest, recursive=True)
        log.warning(
            "checkpoints in %s were written with different %s; moved to %s, training starts fresh", self.root, differs, dest
        )
        return dest

    def download(self, info: CheckpointInfo, local_dir: str | Path) -> Path:
        """Copy a checkpoint's files to `local_dir` (created) and return it."""
        local_dir = Path(local_dir)
        d = self._dir(info.step)
        for rel in info.meta["files"]:
            dest = local_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(posixpath.join(d, rel), str(dest))
        return local_dir

    def prune(self, keep_last: int) -> list[int]:
        """Delete all but the newest `keep_last` and the best (by `metric`, per `higher_is_better`); also stale staging."""
        infos = self.list()
        keep = {c.step for c in infos[-keep_last:]}
        ranked = [c for c in infos if c.metric is not None]
        if ranked:
            higher = ranked[-1].meta.get("higher_is_better", False)
            best = (max if higher else min)(ranked, key=lambda c: c.metric)
            keep.add(best.step)
        removed = []
        for c in infos:
            if c.step not in keep:
                self.fs.rm(self._dir(c.step), recursive=True)
                removed.append(c.step)
        newest = infos[-1].step if infos else -1
        for d in self.fs.ls(self.root, detail=False):
            name = posixpath.basename(d.rstrip("/"))
            if name.endswith(".tmp") and int(name[5:-4]) <= newest:
                self.fs.rm(d, recursive=True)
        return removed


def put_dir(local_dir: str | Path, url: str) -> None:
    """Upload a local directory's files to `url` (any fsspec URL), each via a temp name then a move."""
    fs, root = fsspec.core.url_to_fs(url)
    fs.makedirs(root, exist_ok=True)
    for p in sorted(Path(local_dir).iterdir()):
        if p.is_file():
            tmp = posixpath.join(root, f".{p.name}.tmp{os.getpid()}")
            fs.put_file(str(p), tmp)
            fs.mv(tmp, posixpath.join(root, p.name))
