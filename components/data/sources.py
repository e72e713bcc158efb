"""Ingest sources: expand dirs/braces/globs/manifests on any fsspec URL and stream raw samples grouped by key."""

from __future__ import annotations

import itertools
import json
import posixpath
import re
from collections.abc import Iterator, Sequence

import pandas as pd
import pyarrow.parquet as pq
from braceexpand import braceexpand

from components.data.checks import IMAGE_EXTS, RawSample
from components.data.config import IngestConfig
from components.data.storage import url_to_fs
from components.data.tarstream import MAX_MEMBER_BYTES, iter_tar

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
MANIFEST_SUFFIXES = (".csv", ".parquet")


def _with_protocol(fs: object, path: str, url: str) -> str:
    return fs.unstrip_protocol(path) if "://" in url else path  # type: ignore[attr-defined]


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
            raise ValueError(f"ingest source {src!r} matches no tar shards or manifests (.tar, .tar.gz, .csv, .parquet)")
        out += found
    return out


def _classify(url: str) -> tuple[str, str]:
    if url.endswith(TAR_SUFFIXES):
        return "tar", url
    if url.endswith(MANIFEST_SUFFIXES):
        return "manifest", url
    return "skip", url


def split_key(name: str) -> tuple[str, str]:
    """webdataset convention: key is the path up to the first dot of the file name, extension the rest (lower-case)."""
    m = re.match(r"^((?:.*/|)[^./]*)\.?([^/]*)$", name)
    return (m.group(1), m.group(2).lower()) if m else (name, "")


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
    except Exception as e:  # unreadable shard (missing, permission, not a tar): one record, never a crash
        if cur is not None:
            cur.reason, cur.detail, cur.files = "truncated_tar", f"{type(e).__name__}: {e}", {}
        else:
            cur = RawSample(url, "", reason="unreadable_source", detail=f"{type(e).__name__}: {e}")
    if cur is not None:
        yield cur


def iter_manifest_samples(url: str, cfg: IngestConfig) -> Iterator[RawSample]:
    """Rows of a CSV/Parquet manifest; image paths resolve relative to the manifest (or are absolute paths/URLs)."""
    try:
        fs, path = url_to_fs(url)
        chunks = _manifest_chunks(fs, path)
        first = next(chunks, None)
    except Exception as e:
        yield RawSample(url, "", reason="unreadable_source", detail=f"{type(e).__name__}: {e}")
        return
    base = posixpath.dirname(path)
    stem = posixpath.basename(path).rsplit(".", 1)[0]
    row = 0
    for chunk in itertools.chain([first], chunks) if first is not None else ():
        missing = {cfg.manifest_image_col, cfg.manifest_caption_col} - set(chunk.columns)
        if missing:
            yield RawSample(
                url,
                "",
                reason="unreadable_source",
                detail=f"manifest lacks column(s) {sorted(missing)}; has {list(chunk.columns)}",
            )
            return
        for rec in chunk.to_dict("records"):
            key = rec.get(cfg.manifest_key_col)
            key = str(key) if isinstance(key, (str, int)) and str(key) else f"{stem}-{row:09d}"
            row += 1
            yield _manifest_sample(url, fs, base, key, rec[cfg.manifest_image_col], rec[cfg.manifest_caption_col])


def _manifest_chunks(fs: object, path: str) -> Iterator[pd.DataFrame]:
    if path.endswith(".parquet"):
        pf = pq.ParquetFile(fs.open(path, "rb"))  # type: ignore[attr-defined]
        for batch in pf.iter_batches(batch_size=1024):
            yield batch.to_pandas()
    else:
        f = fs.open(path, "rb")  # type: ignore[attr-defined]
        # surrogateescape keeps non-UTF-8 bytes so the row (not the whole file) is quarantined
        yield from pd.read_csv(f, chunksize=1024, dtype=object, keep_default_na=False, encoding_errors="surrogateescape")


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
    if "://" in image:
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
