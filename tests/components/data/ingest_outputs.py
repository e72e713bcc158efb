"""Engine comparisons: sources with every bad case, and what two ingest runs must agree on (all of OUT/ingest but timings)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq

from components.data.config import IngestConfig
from components.data.storage import tar_bytes
from tests.components.data.conftest import bad_manifest, bad_shards, png

CFG = IngestConfig(num_workers=0, max_pixels=1_000_000, samples_per_shard=5, batch_size=4, progress=False)


def write_mixed_sources(root: Path) -> list[str]:
    """Sources with every bad case: the bad shard set, a clean shard, the bad manifest and a missing file; output shards
    straddle the source boundaries (5 samples each). Paths are relative to `root` (the caller's working directory)."""
    (root / "shards").mkdir(parents=True)
    (root / "manifest").mkdir()
    bad_shards(root / "shards")
    bad_manifest(root / "manifest")
    clean = [m for i in range(7) for m in ((f"c{i}.png", png(seed=200 + i)), (f"c{i}.txt", f"clean caption {i}".encode()))]
    (root / "shards" / "clean.tar").write_bytes(tar_bytes(clean))
    return ["shards/shard-{000000,000001}.tar", "shards/clean.tar", "manifest/manifest.csv", "shards/missing.tar"]


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
