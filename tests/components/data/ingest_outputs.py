"""What two ingest runs must agree on, whichever engine ran them: every file of OUT/ingest but the timings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq

RUN_ONLY = ("seconds", "samples_per_s", "engine", "n_nodes")  # summary.json fields that describe the run, not the data


def ingest_outputs(out: Path) -> dict:
    """{shard name: sha256 of its bytes}, the metadata and quarantine rows in order, and summary.json less RUN_ONLY."""
    summary = json.loads((out / "summary.json").read_text())
    return {
        "shards": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "shards").glob("*.tar"))},
        "metadata": pq.read_table(out / "metadata.parquet").to_pylist(),
        "quarantine": pq.read_table(out / "quarantine.parquet").to_pylist(),
        "summary": {k: v for k, v in summary.items() if k not in RUN_ONLY},
    }


def assert_same_ingest(a: Path, b: Path) -> dict:
    """The two runs wrote the same shards (byte for byte), rows, reasons and counts; returns a's outputs."""
    x, y = ingest_outputs(a), ingest_outputs(b)
    assert x["shards"] == y["shards"]
    for table in ("metadata", "quarantine"):
        assert len(x[table]) == len(y[table]), table
        for i, (rx, ry) in enumerate(zip(x[table], y[table])):
            assert rx == ry, (table, i, rx, ry)
    assert x["summary"] == y["summary"]
    return x
