"""The one tar reader: members of a stream (reporting corrupt and truncated ones), and webdataset samples of shards.

Hand-written because `tarfile` in stream mode ends iteration silently at an invalid header in the
middle of an archive (samples after it would vanish uncounted); here a bad header is reported and
the reader resynchronises on the next valid header. Members are never extracted to disk.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import fsspec

BLOCK = 512
ZERO = bytes(BLOCK)
REGULAR = (b"0", b"\0", b"7")
MAX_MEMBER_BYTES = 256 * 2**20  # one image/caption member: anything larger is skipped unread (memory bound)
SHARD_IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")  # a shard sample's image member, `{key}.jpg|png|webp` (img2dataset)


@dataclass(frozen=True)
class TarEntry:
    """A regular member, or a problem (reason set) at `offset` with a best-effort `name`."""

    name: str
    data: bytes
    offset: int
    reason: str | None = None
    detail: str = ""


def _read(f: BinaryIO, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _checksum_ok(h: bytes) -> bool:
    try:
        stored = int(h[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    unsigned = sum(h) - sum(h[148:156]) + 8 * 32
    if stored == unsigned:
        return True
    signed = unsigned - 256 * sum(1 for b in h[:148] + h[156:] if b > 127)  # some old writers used signed chars
    return stored == signed


def _field(h: bytes, a: int, b: int) -> str:
    return h[a:b].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _size(h: bytes) -> int:
    raw = h[124:136]
    if raw[0] & 0x80:  # base-256 (GNU) for members over 8 GiB
        return int.from_bytes(raw[1:], "big")
    return int(raw.replace(b"\0", b" ").strip() or b"0", 8)


def _name(h: bytes) -> str:
    name, prefix = _field(h, 0, 100), _field(h, 345, 500) if h[257:262] == b"ustar" else ""
    return f"{prefix}/{name}" if prefix else name


def _pax(data: bytes) -> dict[str, str]:
    out, i = {}, 0
    while i < len(data):
        sp = data.index(b" ", i)
        n = int(data[i:sp])
        k, _, v = data[sp + 1 : i + n - 1].partition(b"=")
        out[k.decode("utf-8", "surrogateescape")] = v.decode("utf-8", "surrogateescape")
        i += n
    return out


def split_key(name: str) -> tuple[str, str]:
    """webdataset convention: key is the path up to the first dot of the file name, extension the rest (lower-case)."""
    m = re.match(r"^((?:.*/|)[^./]*)\.?([^/]*)$", name)
    return (m.group(1), m.group(2).lower()) if m else (name, "")


class ShardError(ValueError):
    """A training shard that cannot be read whole (ingest quarantines bad input; its shards must be intact)."""


def iter_shard_samples(urls: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Samples of webdataset shards (any fsspec URL), in order: {"__key__", "__url__", ext: bytes} per run of
    consecutive members sharing a key. Links and devices are skipped, as are `__meta__` members and names without an
    extension (as webdataset does); a damaged shard or a key with two members of one extension raises ShardError."""
    for url in urls:
        with fsspec.open(url, "rb") as f:
            cur: dict[str, Any] | None = None
            for e in iter_tar(f):
                if e.reason == "unsupported_member":
                    continue
                if e.reason:
                    raise ShardError(f"{url}: {e.reason}: {e.detail}")
                key, ext = split_key(e.name)
                if not ext or not key.rpartition("/")[2] or re.match(r"__[^/]*__($|/)", e.name):
                    continue
                if cur is not None and cur["__key__"] != key:
                    yield cur
                    cur = None
                if cur is None:
                    cur = {"__key__": key, "__url__": url}
                if ext in cur:
                    raise ShardError(f"{url}: member {e.name!r} appears twice in sample {key!r}")
                cur[ext] = e.data
            if cur is not None:
                yield cur


def iter_tar(f: BinaryIO) -> Iterator[TarEntry]:
    """Yield regular members in order; problems come as entries with `reason` set (then reading goes on if it can)."""
    head = f.read(2)
    if head[:2] == b"\x1f\x8b":
        f = gzip.GzipFile(fileobj=_Prepend(head, f))  # type: ignore[assignment]
        head = b""
    offset, long_name, pax, last = 0, None, {}, ""
    hdr = head + _read_safe(f, BLOCK - len(head))
    while True:
        if isinstance(hdr, TarEntry):  # the stream itself failed (e.g. bad gzip)
            yield TarEntry(long_name or "", b"", offset, "truncated_tar", hdr.detail)
            return
        if hdr == ZERO:
            return
        if not hdr:  # a writer that finished would have written the end-of-archive blocks: the last sample may be cut
            detail = f"archive ends at byte {offset} without the end-of-archive marker (cut at a member boundary?)"
            yield TarEntry(last, b"", offset, "truncated_tar", detail)
            return
        if len(hdr) < BLOCK:
            yield TarEntry("", b"", offset, "truncated_tar", f"archive ends inside a header at byte {offset}")
            return
        if not _checksum_ok(hdr):
            yield TarEntry(_name(hdr), b"", offset, "corrupt_tar_member", f"bad header checksum at byte {offset}")
            while True:  # resync: next block that is a valid ustar header
                offset += BLOCK
                hdr = _read_safe(f, BLOCK)
                if isinstance(hdr, TarEntry) or len(hdr) < BLOCK or hdr == ZERO:
                    return
                if _checksum_ok(hdr) and hdr[257:262] == b"ustar":
                    break
            long_name, pax = None, {}
            continue
        start, size, kind = offset, _size(hdr), hdr[156:157]
        name = pax.get("path") or long_name or _name(hdr)
        if size > MAX_MEMBER_BYTES:  # never held in memory: skipped in chunks, reported with its size
            got = _skip(f, size + (-size % BLOCK))
            if got < size:
                yield TarEntry(name, b"", offset, "truncated_tar", f"member {name!r} needs {size} bytes, archive has {got}")
                return
            offset += BLOCK + size + (-size % BLOCK)
            yield TarEntry(name, b"", start, "member_too_large", f"member {name!r} is {size} bytes > {MAX_MEMBER_BYTES}")
            long_name, pax = None, {}
            hdr = _read_safe(f, BLOCK)
            continue
        data = _read_safe(f, size)
        if isinstance(data, TarEntry) or len(data) < size:
            got = 0 if isinstance(data, TarEntry) else len(data)
            yield TarEntry(name, b"", offset, "truncated_tar", f"member {name!r} needs {size} bytes, archive has {got}")
            return
        _read_safe(f, -size % BLOCK)  # padding to the block boundary
        offset += BLOCK + size + (-size % BLOCK)
        if kind == b"L":
            long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
        elif kind == b"x":
            pax = _pax(data)
        elif kind == b"g" or kind == b"5":
            pass
        else:
            last = name
            if kind in REGULAR:
                yield TarEntry(name, data, start)
            else:
                yield TarEntry(name, b"", start, "unsupported_member", f"member type {kind!r} (link/device) at byte {start}")
            long_name, pax = None, {}
        hdr = _read_safe(f, BLOCK)


def _skip(f: BinaryIO, n: int) -> int:
    """Read and drop `n` bytes in 1 MiB chunks; returns how many there were."""
    got = 0
    while got < n:
        b = _read_safe(f, min(n - got, 2**20))
        if isinstance(b, TarEntry) or not b:
            break
        got += len(b)
    return got


def _read_safe(f: BinaryIO, n: int) -> bytes | TarEntry:
    try:
        return _read(f, n)
    except (OSError, EOFError, zlib.error) as e:
        return TarEntry("", b"", -1, "truncated_tar", f"{type(e).__name__}: {e}")


class _Prepend:
    """A file object that replays already-read bytes first (to sniff gzip magic on a stream)."""

    def __init__(self, head: bytes, f: BinaryIO) -> None:
        self.head, self.f = head, f

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out, self.head = self.head[:n] if n >= 0 else self.head, self.head[n:] if n >= 0 else b""
            return out + (self.f.read(n - len(out)) if n < 0 or len(out) < n else b"")
        return self.f.read(n)
