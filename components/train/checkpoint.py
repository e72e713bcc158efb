"""Checkpoints on any fsspec URL: staged upload, commit by manifest with checksums, verify on load, prune.

Layout under `<storage>/checkpoints/`:
    step-00000050.tmp/   staging: every rank uploads its files here
    step-00000050/       committed: moved from staging, then `manifest.json` (sha256 of every file)
                         is written last. A directory without a manifest, or whose files do not
                         match it, is not a checkpoint: loading skips it and falls back to the
                         previous good one. Object stores have no atomic directory rename, so the
                         manifest is the commit marker; on local disk the move is a rename. The
                         manifest itself is written under a temp name and moved, so a kill mid-write
                         never leaves a half manifest.
Every storage call is retried on transient errors (components.retry); a full disk fails at once.
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

from components.data.storage import move_tree
from components.io import is_url
from components.retry import RetryPolicy, retry_io

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
MANIFEST_TMP = "manifest.json.tmp"


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
    "compile",  # compiled and eager steps agree to rounding; a checkpoint of either resumes in the other
)


class CheckpointStore:
    """Checkpoint directories under `<root_url>/checkpoints` on any fsspec filesystem."""

    def __init__(self, root_url: str, retry: RetryPolicy | None = None):
        self.fs, root = fsspec.core.url_to_fs(root_url)
        self.retry = retry
        self.protocol = root_url.split("://", 1)[0] + "://" if is_url(root_url) else ""
        self.root = posixpath.join(root, "checkpoints")

    def _dir(self, step: int, staging: bool = False) -> str:
        return posixpath.join(self.root, f"step-{step:08d}" + (".tmp" if staging else ""))

    def url(self, step: int) -> str:
        """The committed checkpoint's URL (with protocol) for messages and results."""
        return self.protocol + self._dir(step) if self.protocol not in ("", "file://") else self._dir(step)

    def _io(self, fn, what: str, path: str):
        """One idempotent storage call with retries; errors name the full URL."""
        url = self.protocol + path if self.protocol not in ("", "file://") else path
        return retry_io(fn, what, url, self.retry)

    def upload(self, local_dir: str | Path, step: int) -> None:
        """Copy every file under `local_dir` into the staging directory of `step` (any rank may call)."""
        local_dir = Path(local_dir)
        staging = self._dir(step, staging=True)
        for p in sorted(local_dir.rglob("*")):
            if p.is_file():
                dest = posixpath.join(staging, p.relative_to(local_dir).as_posix())
                parent = posixpath.dirname(dest)
                self._io(lambda parent=parent: self.fs.makedirs(parent, exist_ok=True), "create", parent)
                self._io(lambda p=p, dest=dest: self.fs.put_file(str(p), dest), "upload checkpoint file to", dest)

    def commit(self, step: int, meta: dict[str, Any]) -> CheckpointInfo:
        """Move staging to its final name and write the manifest last (rank 0, after all uploads)."""
        staging, final = self._dir(step, staging=True), self._dir(step)
        if self._io(lambda: self.fs.exists(final), "check", final):  # left by a run killed mid-commit: no manifest
            self._io(lambda: self.fs.rm(final, recursive=True), "remove", final)
        self._io(lambda: move_tree(self.fs, staging, final), "commit (move staging to)", final)
        files = {posixpath.relpath(p, final): self._sha256(p) for p in self._files(final)}
        manifest = {"step": step, "files": files, **meta}
        tmp, dest = posixpath.join(final, MANIFEST_TMP), posixpath.join(final, MANIFEST)
        body = json.dumps(manifest, indent=2).encode()
        self._io(lambda: self.fs.pipe_file(tmp, body), "write manifest", tmp)
        self._io(lambda: self.fs.mv(tmp, dest), "commit manifest", dest)  # a rename on local disk: atomic
        return CheckpointInfo(self.url(step), step, manifest)

    def _files(self, d: str) -> list[str]:
        found = self._io(lambda: self.fs.find(d), "list", d)
        return sorted(p for p in found if posixpath.basename(p) not in (MANIFEST, MANIFEST_TMP))

    def _sha256(self, path: str) -> str:
        return self._io(lambda: sha256_file(self.fs, path), "read", path)

    def list(self) -> list[CheckpointInfo]:
        """Committed checkpoints (manifest present), oldest first. Checksums are not checked here."""
        if not self._io(lambda: self.fs.exists(self.root), "check", self.root):
            return []
        out = []
        for d in self._io(lambda: self.fs.ls(self.root, detail=False), "list", self.root):
            name = posixpath.basename(d.rstrip("/"))
            if not name.startswith("step-") or name.endswith(".tmp"):
                continue
            mpath = posixpath.join(self._dir(int(name[5:])), MANIFEST)
            if self._io(lambda mpath=mpath: self.fs.exists(mpath), "check", mpath):
                try:
                    meta = json.loads(self._io(lambda mpath=mpath: self.fs.cat_file(mpath), "read", mpath))
                except json.JSONDecodeError as e:  # written by an older, non-atomic commit and cut short
                    log.error("ignoring %s: unreadable manifest (%s); the checkpoint was never committed", mpath, e)
                    continue
                out.append(CheckpointInfo(self.url(meta["step"]), meta["step"], meta))
        return sorted(out, key=lambda c: c.step)

    def verify(self, info: CheckpointInfo) -> None:
        """Raise CorruptCheckpointError naming the first file that is missing or differs from the manifest."""
        d = self._dir(info.step)
        for rel, digest in info.meta["files"].items():
            path = posixpath.join(d, rel)
            if not self._io(lambda path=path: self.fs.exists(path), "check", path):
                raise CorruptCheckpointError(f"{self.url(info.step)}: {rel} listed in the manifest is missing")
            if self._sha256(path) != digest:
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

    def set_aside_if_incompatible(
        self, train_cfg: dict[str, Any], ignore: tuple[str, ...] = RESUME_SAFE_KEYS, resume_key: dict | None = None
    ) -> str | None:
        """Move checkpoints written under another training config (or, when given, another `resume_key`: code and
        data fingerprints) out of the way, so a changed run starts fresh instead of resuming someone else's.
        Returns where they went."""
        info = self.latest_good()
        if info is None:
            return None
        train_cfg = json.loads(json.dumps(train_cfg))  # tuples -> lists, as stored
        meta_path = posixpath.join(self._dir(info.step), "train_meta.json")
        old = json.loads(self.fs.cat_file(meta_path)) if self.fs.exists(meta_path) else {}
        old_cfg = old.get("config", {})
        differs = sorted(k for k in set(old_cfg) | set(train_cfg) if k not in ignore and old_cfg.get(k) != train_cfg.get(k))
        if resume_key is not None:
            old_key = old.get("resume_key") or {}
            differs += [f"resume_key.{k}" for k in sorted(resume_key) if old_key.get(k) != resume_key[k]]
        if not differs:
            return None
        dest = f"{self.root}.stale-{int(time.time())}"
        move_tree(self.fs, self.root, dest)
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
            src = posixpath.join(d, rel)
            self._io(lambda src=src, dest=dest: self.fs.get_file(src, str(dest)), "download checkpoint file", src)
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
                self._io(lambda c=c: self.fs.rm(self._dir(c.step), recursive=True), "remove", self._dir(c.step))
                removed.append(c.step)
        newest = infos[-1].step if infos else -1
        for d in self._io(lambda: self.fs.ls(self.root, detail=False), "list", self.root):
            name = posixpath.basename(d.rstrip("/"))
            if name.endswith(".tmp") and int(name[5:-4]) <= newest:  # staging left by a killed run
                self._io(lambda d=d: self.fs.rm(d, recursive=True), "remove", d)
        return removed


def put_dir(local_dir: str | Path, url: str, retry: RetryPolicy | None = None) -> None:
    """Upload a local directory's files to `url` (any fsspec URL), each via a temp name then a move (with retries)."""
    fs, root = fsspec.core.url_to_fs(url)
    retry_io(lambda: fs.makedirs(root, exist_ok=True), "create", url, retry)
    for p in sorted(Path(local_dir).iterdir()):
        if p.is_file():
            tmp, dest = posixpath.join(root, f".{p.name}.tmp{os.getpid()}"), posixpath.join(root, p.name)
            retry_io(lambda p=p, tmp=tmp: fs.put_file(str(p), tmp), "upload", f"{url.rstrip('/')}/{p.name}", retry)
            retry_io(lambda tmp=tmp, dest=dest: fs.mv(tmp, dest), "move into place", f"{url.rstrip('/')}/{p.name}", retry)
