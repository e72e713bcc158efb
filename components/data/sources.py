"""Ingest sources: expand dirs/braces/globs/manifests on any fsspec URL and stream raw samples grouped by key."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import posixpath
import re
import zlib
from collections.abc import Iterator, Sequence

from braceexpand import braceexpand

from components.data.checks import IMAGE_EXTS, RawSample
from components.data.config import IngestConfig
from components.data.manifests import MANIFEST_SUFFIXES, iter_manifest_rows
from components.data.storage import url_to_fs
from components.data.tarstream import MAX_MEMBER_BYTES, iter_tar, split_key
from components.io import is_remote, is_url

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")


# what an unreadable or broken source raises (I/O and storage errors, gzip damage, an unknown URL protocol or
# a missing fsspec backend); anything else is a bug of ours and must surface, not become a quarantine record
SOURCE_ERRORS = (OSError, EOFError, zlib.error, ValueError, ImportError)


def _with_protocol(fs: object, path: str, url: str) -> str:
    return fs.unstrip_protocol(path) if is_url(url) else path  # type: ignore[attr-defined]


def expand_sources(sources: Sequence[str]) -> list[tuple[str, str]]:
    """[(kind, url)] with kind "tar" or "manifest", in a stable order; raises ValueError naming a source that matches nothing."""
    out: list[tuple[str, str]] = []
    for src in sources:
        found: list[tuple[str, str]] = []
        for url in braceexpand(src):
            fs, path = url_to_fs(url)
            if any(c in path for c in "*?["):
                found += [_classify(_with_protocol(fs, p, url)) for p in sorted(fs.glob(path))]
            elif fs.isdir(path):
                files = sorted(p for p in fs.ls(path, detail=False) if p.endswith(TAR_SUFFIXES))
                found += [("tar", _with_protocol(fs, p, url)) for p in files]
            else:
                found.append(_classify(url))
        found = [f for f in found if f[0] != "skip"]
        if not found:
            kinds = ", ".join(TAR_SUFFIXES[:2] + MANIFEST_SUFFIXES)
            raise ValueError(f"ingest source {src!r} matches no tar shards or manifests ({kinds})")
        out += found
    return out


def _classify(url: str) -> tuple[str, str]:
    if url.endswith(TAR_SUFFIXES):
        return "tar", url
    if url.endswith(MANIFEST_SUFFIXES):
        return "manifest", url
    return "skip", url


def source_id(url: str) -> str:
    """A source file's name for key namespaces and per-source counts: local paths relative to the working directory
    (the project root for DVC and the flows) when inside it, so a project checked out elsewhere keeps its keys."""
    if is_remote(url):
        return url
    path = os.path.abspath(url.removeprefix("file://"))
    rel = os.path.relpath(path, os.getcwd())
    return path if rel.startswith("..") else rel


def source_tag(url: str) -> str:
    """12 hex digits of sha256(source_id): the namespace of the source's keys (a collision of two sources' tags
    would show as `duplicate_key` quarantines, never as merged samples)."""
    return hashlib.sha256(source_id(url).encode()).hexdigest()[:12]


def is_unsafe(name: str) -> bool:
    """Absolute paths, drive letters, `..` components, control characters and non-UTF-8 bytes: always quarantined.

    Keys become member names of the output shards (and rows of the Parquet tables), so a name that
    could escape a directory when someone extracts a shard, or that is not text, never gets that far.
    """
    parts = re.split(r"[/\\]", name)
    if name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name)) or ".." in parts:
        return True
    return bool(re.search(r"[\x00-\x1f\x7f\udc80-\udcff]", name))  # surrogates: undecodable bytes (surrogateescape)


def iter_tar_samples(url: str) -> Iterator[RawSample]:
    """Consecutive members sharing a key form one sample; problems attach to the sample they belong to."""
    cur: RawSample | None = None
    try:
        fs, path = url_to_fs(url)
        with fs.open(path, "rb") as f:
            for entry in iter_tar(f):
                key, ext = split_key(entry.name) if entry.name else (f"@{entry.offset}", "")
                if cur is not None and cur.key != key:
                    yield cur
                    cur = None
                if cur is None:
                    cur = RawSample(url, key)
                if cur.reason:
                    continue
                if entry.reason:
                    cur.reason, cur.detail, cur.files = entry.reason, entry.detail, {}
                elif is_unsafe(entry.name):
                    cur.reason, cur.detail, cur.files = "unsafe_path", f"member name {entry.name!r}", {}
                elif ext in cur.files:
                    cur.reason, cur.detail, cur.files = "duplicate_key", f"member {entry.name!r} appears twice", {}
                else:
                    cur.files[ext] = entry.data
    except SOURCE_ERRORS as e:  # unreadable shard (missing, permission, not a tar, unknown protocol): one record
        if cur is not None:
            cur.reason, cur.detail, cur.files = "truncated_tar", f"{type(e).__name__}: {e}", {}
        else:
            cur = RawSample(url, "", reason="unreadable_source", detail=f"{type(e).__name__}: {e}")
    if cur is not None:
        yield cur


def iter_manifest_samples(url: str, cfg: IngestConfig) -> Iterator[RawSample]:
    """Rows of a CSV/Parquet/TSV/JSONL manifest; image paths resolve relative to the manifest (or are absolute
    paths/URLs). A bad line is one `bad_manifest_line` record naming its line; an unusable file one `unreadable_source`."""
    fs, path = None, ""
    try:
        fs, path = url_to_fs(url)
        rows = iter_manifest_rows(fs, path, cfg)
        first = next(rows, None)
    except Exception as e:  # ManifestError, unreadable file, parser errors
        yield RawSample(url, "", reason="unreadable_source", detail=f"{type(e).__name__}: {e}")
        return
    base = posixpath.dirname(path)
    stem = posixpath.basename(path).rsplit(".", 1)[0]
    row = 0
    try:
        for r in itertools.chain([first], rows) if first is not None else ():
            rec = r.rec or {}
            key = rec.get(cfg.manifest_key_col)
            key = str(key) if isinstance(key, (str, int)) and str(key) else f"{stem}-{row:09d}"
            row += 1
            if r.error:
                yield RawSample(url, key, reason="bad_manifest_line", detail=r.error)
            else:
                yield _manifest_sample(url, fs, base, key, rec.get(cfg.manifest_image_col), rec.get(cfg.manifest_caption_col))
    except Exception as e:  # a later chunk without the columns, or a read error mid-file: the rest is unreadable
        yield RawSample(url, "", reason="unreadable_source", detail=f"after {row} rows: {type(e).__name__}: {e}")


def _manifest_sample(url: str, fs: object, base: str, key: str, image: object, caption: object) -> RawSample:
    s = RawSample(url, key)
    if is_unsafe(key):  # the key names the output members: no `..`, absolute paths or control characters
        s.reason, s.detail = "unsafe_path", f"manifest key {key!r}"
        return s
    if not isinstance(image, str) or not image.strip():
        s.reason, s.detail = "missing_image", "empty image reference"
        return s
    if caption is None or (isinstance(caption, float) and caption != caption):
        s.reason, s.detail = "missing_caption", "no caption value"
        return s
    if is_url(image):
        ifs, ipath = url_to_fs(image)
    else:
        ifs, ipath = fs, image if image.startswith("/") else posixpath.normpath(posixpath.join(base, image))
    try:
        with ifs.open(ipath, "rb") as f:  # type: ignore[attr-defined]
            data = f.read(MAX_MEMBER_BYTES + 1)  # bounded: a huge file is never read whole
    except FileNotFoundError:
        s.reason, s.detail = "missing_image", f"not found: {image}"
        return s
    except Exception as e:
        s.reason, s.detail = "missing_image", f"cannot read {image}: {type(e).__name__}: {e}"
        return s
    if len(data) > MAX_MEMBER_BYTES:
        s.reason, s.detail = "member_too_large", f"{image} is over {MAX_MEMBER_BYTES} bytes"
        return s
    ext = posixpath.splitext(ipath)[1].lstrip(".").lower() or "image"
    s.files = {ext if ext in IMAGE_EXTS else "image": data, "txt": str(caption).encode("utf-8", "surrogateescape")}
    return s


def iter_source_samples(kind: str, url: str, tag: str, cfg: IngestConfig) -> Iterator[RawSample]:
    """The raw samples of one source file ("tar" or "manifest"), tagged with the key namespace `tag` (`source_tag`,
    computed where the paths are named: a worker elsewhere has another working directory)."""
    for s in iter_tar_samples(url) if kind == "tar" else iter_manifest_samples(url, cfg):
        s.namespace = tag
        yield s


def read_upstream_stats(tar_urls: Sequence[str]) -> dict:
    """Sum img2dataset `*_stats.json` files found beside the shards (absent stats are fine)."""
    total = {"n_stats_files": 0, "count": 0, "successes": 0, "failed": 0}
    for url in tar_urls:
        stats_url = re.sub(r"\.(tar|tar\.gz|tgz)$", "_stats.json", url)
        try:
            fs, path = url_to_fs(stats_url)
            with fs.open(path, "rb") as f:
                st = json.load(f)
        except Exception:
            continue
        total["n_stats_files"] += 1
        total["count"] += int(st.get("count", 0))
        total["successes"] += int(st.get("successes", 0))
        total["failed"] += sum(int(v) for k, v in st.items() if k.startswith("failed_") and isinstance(v, (int, float)))
    return total
