"""fsspec helpers shared by synth and ingest: URL joins, atomic directory publish, deterministic tar writing.

Whole-file writes retry transient storage errors (components.retry); a write into an open shard
cannot be retried byte-exactly, so there an error names the shard and the atomic directory is
dropped (the Prefect task's retry redoes the stage). A full disk always fails at once, clearly.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tarfile
import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO

import fsspec

from components.io import is_url
from components.retry import RetryPolicy, StorageError, full_error, is_full, retry_io

BLOCK, RECORD = 512, 10240


def url_to_fs(url: str) -> tuple[Any, str]:
    """(filesystem, path) for a local path or any fsspec URL; credentials come from env/fsspec config only."""
    return fsspec.core.url_to_fs(url)


def join(url: str, *parts: str) -> str:
    """Join path parts onto a local path or a URL."""
    if is_url(url):
        return posixpath.join(url.rstrip("/"), *parts)
    return os.path.join(url, *parts)


def write_bytes(url: str, data: bytes, retry: RetryPolicy | None = None) -> None:
    """Write `data` to `url`, retried whole on transient errors (callers write inside an atomic_dir: no temp name)."""
    fs, path = url_to_fs(url)

    def write() -> None:
        fs.makedirs(posixpath.dirname(path) or ".", exist_ok=True)
        with fs.open(path, "wb") as f:
            f.write(data)

    retry_io(write, "write", url, retry)


@contextlib.contextmanager
def stream_errors(what: str, url: str) -> Iterator[None]:
    """Name the file in an I/O error raised while streaming into it; ENOSPC becomes StorageFullError."""
    try:
        yield
    except StorageError:
        raise
    except OSError as e:
        if is_full(e):
            raise full_error(what, url, e) from e
        raise StorageError(e.errno, f"{what} {url} failed: {type(e).__name__}: {e}") from e


@contextlib.contextmanager
def atomic_dir(url: str) -> Iterator[str]:
    """Yield a temporary sibling of `url`; on success it replaces `url`, on error it is removed.

    An interrupted run never leaves a half-written directory at `url` (on object stores such as
    S3, which cannot rename directories, the finished files are moved into place one by one).
    """
    fs, path = url_to_fs(url)
    parent, name = posixpath.split(path.rstrip("/"))
    tmp_path = posixpath.join(parent, f".{name}.tmp-{uuid.uuid4().hex[:8]}")
    stale = _stale_siblings(fs, parent, name)  # left by a run that was killed (SIGKILL skips the cleanup below)
    fs.makedirs(tmp_path, exist_ok=True)
    tmp_url = fs.unstrip_protocol(tmp_path) if is_url(url) else tmp_path
    try:
        yield tmp_url
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(tmp_path, recursive=True)
        raise
    if not _has_dirs(fs):  # object stores: no directory rename; move file by file once everything is written
        if fs.exists(path):
            fs.rm(path, recursive=True)
        move_tree(fs, tmp_path, path)
    elif fs.exists(path):
        old = posixpath.join(parent, f".{name}.old-{uuid.uuid4().hex[:8]}")
        fs.mv(path, old, recursive=True)
        fs.mv(tmp_path, path, recursive=True)
        fs.rm(old, recursive=True)
    else:
        fs.mv(tmp_path, path, recursive=True)
    for d in stale:
        with contextlib.suppress(Exception):
            fs.rm(d, recursive=True)


def move_tree(fs: Any, src: str, dst: str) -> None:
    """Rename directory `src` to `dst`; object stores (no directories: s3fs's recursive mv trips over the prefix)
    move file by file, so a reader may see a partial `dst` meanwhile (callers publish a marker last)."""
    if _has_dirs(fs):
        fs.mv(src, dst, recursive=True)
        return
    for f in fs.find(src):
        fs.mv(f, dst + f[len(src) :])
    with contextlib.suppress(FileNotFoundError):
        fs.rm(src, recursive=True)


def _stale_siblings(fs: Any, parent: str, name: str) -> list[str]:
    """`.NAME.tmp-*` / `.NAME.old-*` beside `NAME`: never taken for output, removed once a new one is published."""
    try:
        siblings = fs.ls(parent, detail=False) if fs.exists(parent) else []
    except OSError:
        return []
    prefixes = (f".{name}.tmp-", f".{name}.old-")
    return [d for d in siblings if posixpath.basename(d.rstrip("/")).startswith(prefixes)]


def _protocols(fs: Any) -> set[str]:
    return set(fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def _has_dirs(fs: Any) -> bool:
    return bool({"file", "local", "memory"} & _protocols(fs))


def member_bytes(name: str, data: bytes) -> bytes:
    """One regular tar member (header + data + padding) with fixed metadata, so shards are byte-reproducible.

    Short ASCII names get a hand-built ustar header (tarfile's addfile costs ~150 us per member);
    anything else goes through tarfile's PAX encoder.
    """
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) < 100 and raw.isascii():
        h = bytearray(BLOCK)
        h[0 : len(raw)] = raw
        h[100:136] = b"0000644\x000000000\x000000000\x00%011o\x00" % len(data)
        h[136:156] = b"00000000000\x00        "
        h[156:157] = b"0"
        h[257:265] = b"ustar\x0000"
        h[148:155] = b"%06o\x00" % sum(h)
        header = bytes(h)
    else:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o644, "", ""
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    return header + data + bytes(-len(data) % BLOCK)


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A whole tar archive in memory (one synthetic shard is a few MB)."""
    body = b"".join(member_bytes(n, d) for n, d in members)
    return body + bytes(2 * BLOCK) + bytes(-(len(body) + 2 * BLOCK) % RECORD)


class TarShardWriter:
    """Stream samples into numbered shards `DIR/shard-000000.tar`, rolling over every `samples_per_shard`."""

    def __init__(self, dir_url: str, samples_per_shard: int) -> None:
        self.fs, self.dir = url_to_fs(dir_url)
        self.fs.makedirs(self.dir, exist_ok=True)
        self.samples_per_shard = samples_per_shard
        self.shard = -1
        self.count = 0
        self._file: BinaryIO | None = None
        self._written = 0

    @property
    def shard_name(self) -> str:
        return f"shard-{self.shard:06d}.tar"

    def write(self, members: list[tuple[str, bytes]]) -> str:
        """Add one sample's members; returns the shard file name it went to."""
        return self.write_raw(b"".join(member_bytes(n, d) for n, d in members))

    def write_raw(self, buf: bytes) -> str:
        """Add one sample given as already-encoded tar members (see `member_bytes`)."""
        if self._file is None or self.count % self.samples_per_shard == 0:
            self._roll()
        assert self._file is not None
        with stream_errors("write shard", self.url):
            self._file.write(buf)
        self._written += len(buf)
        self.count += 1
        return self.shard_name

    @property
    def url(self) -> str:
        """The current shard's path (local) or URL, for messages."""
        path = posixpath.join(self.dir, self.shard_name)
        return path if "file" in _protocols(self.fs) else self.fs.unstrip_protocol(path)

    def _roll(self) -> None:
        self.close()
        self.shard += 1
        path = posixpath.join(self.dir, self.shard_name)
        self._file = retry_io(lambda: self.fs.open(path, "wb"), "open shard", self.url)
        self._written = 0

    def close(self) -> None:
        """Finish the current shard (end-of-archive blocks, padded to a whole record)."""
        if self._file is not None:
            end = 2 * BLOCK
            f, self._file = self._file, None
            with stream_errors("finish shard", self.url):
                f.write(bytes(end + (-(self._written + end) % RECORD)))
                f.close()
