"""Manifest rows: CSV/Parquet tables, CC3M/CC12M-style TSV (with or without a header) and JSON Lines.

Each reader yields `ManifestRow`s: a record (column -> value) with its line number, or the problem
found on that line. A bad line becomes one quarantine record naming its line; the rest of the file
is still read. A file-level problem (unreadable, no usable columns) is raised as `ManifestError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from components.data.config import IngestConfig

MANIFEST_SUFFIXES = (".csv", ".parquet", ".tsv", ".jsonl")


class ManifestError(ValueError):
    """The whole manifest is unusable (one `unreadable_source` record)."""


@dataclass(frozen=True)
class ManifestRow:
    """One data row: `rec` when it parsed, else `error`; `line` is 1-based in text files, None in Parquet."""

    line: int | None
    rec: dict[str, Any] | None = None
    error: str = ""


def iter_manifest_rows(fs: Any, path: str, cfg: IngestConfig) -> Iterator[ManifestRow]:
    """Rows of the manifest at `path` on `fs`, in file order."""
    if path.endswith(".tsv"):
        yield from _tsv_rows(_lines(fs, path), cfg)
    elif path.endswith(".jsonl"):
        yield from _jsonl_rows(_lines(fs, path))
    else:
        for chunk in _table_chunks(fs, path):
            _require_columns(list(chunk.columns), cfg)
            for rec in chunk.to_dict("records"):
                yield ManifestRow(None, rec)


def _lines(fs: Any, path: str) -> Iterator[str]:
    # surrogateescape keeps non-UTF-8 bytes so the row (not the whole file) is quarantined
    with fs.open(path, "rb") as f:
        for raw in f:
            yield raw.decode("utf-8", "surrogateescape").rstrip("\r\n")


def _require_columns(columns: list[str], cfg: IngestConfig) -> None:
    missing = {cfg.manifest_image_col, cfg.manifest_caption_col} - set(columns)
    if missing:
        raise ManifestError(f"manifest lacks column(s) {sorted(missing)}; has {columns}")


def _tsv_rows(lines: Iterator[str], cfg: IngestConfig) -> Iterator[ManifestRow]:
    """CC3M ships `caption<TAB>url` and CC12M `url<TAB>caption`, both without a header: a first line naming the
    image and caption columns is a header, otherwise `data.ingest.manifest_columns` names the columns in order."""
    first = next(lines, None)
    if first is None:
        return
    fields = first.split("\t")
    if {cfg.manifest_image_col, cfg.manifest_caption_col} <= set(fields):
        names, start = fields, 2
    elif cfg.manifest_columns:
        names, start, lines = list(cfg.manifest_columns), 1, _prepend(first, lines)
    else:
        raise ManifestError(
            f"TSV without a header naming columns {cfg.manifest_image_col!r} and {cfg.manifest_caption_col!r} "
            f"(first line has {len(fields)} fields); for a header-less file set data.ingest.manifest_columns, "
            "e.g. [caption, image] for CC3M or [image, caption] for CC12M (with manifest_image_col: image)"
        )
    for n, line in enumerate(lines, start):
        if not line.strip():
            continue
        values = line.split("\t")
        if len(values) != len(names):
            yield ManifestRow(n, error=f"line {n}: {len(values)} tab-separated fields, expected {len(names)} ({names})")
        else:
            yield ManifestRow(n, dict(zip(names, values)))


def _prepend(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _jsonl_rows(lines: Iterator[str]) -> Iterator[ManifestRow]:
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            yield ManifestRow(n, error=f"line {n}: not JSON: {e}")
            continue
        if not isinstance(rec, dict):
            yield ManifestRow(n, error=f"line {n}: a JSON {type(rec).__name__}, expected an object")
        else:
            yield ManifestRow(n, rec)


def _table_chunks(fs: Any, path: str) -> Iterator[pd.DataFrame]:
    if path.endswith(".parquet"):
        pf = pq.ParquetFile(fs.open(path, "rb"))
        for batch in pf.iter_batches(batch_size=1024):
            yield batch.to_pandas()
    else:
        f = fs.open(path, "rb")
        yield from pd.read_csv(f, chunksize=1024, dtype=object, keep_default_na=False, encoding_errors="surrogateescape")
