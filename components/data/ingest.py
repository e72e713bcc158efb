"""`data ingest`: stream shards/manifests through worker decoding into normalised shards, metadata and quarantine tables."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from components.data.checks import Bad, Good, RawSample
from components.data.config import IngestConfig
from components.data.sources import expand_sources, iter_source_samples, read_upstream_stats, source_id, source_tag
from components.data.storage import TarShardWriter, atomic_dir, join, url_to_fs, write_bytes
from components.data.workers import check_all

META_SCHEMA = pa.schema(
    [("key", pa.string()), ("source_key", pa.string()), ("caption", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
     ("format", pa.string()), ("bytes", pa.int64()), ("source_shard", pa.string()), ("sha256", pa.string()),
     ("phash", pa.string()), ("shard", pa.string())]
)  # fmt: skip
QUARANTINE_SCHEMA = pa.schema([("source", pa.string()), ("key", pa.string()), ("reason", pa.string()), ("detail", pa.string())])


@dataclass(frozen=True)
class IngestResult:
    """Counts and where things went; `n_input == n_ingested + n_quarantined` always holds."""

    out_dir: str
    n_input: int
    n_ingested: int
    n_quarantined: int
    by_reason: dict[str, int]
    n_shards: int
    seconds: float
    data_version: str = ""  # content hash of the ingested rows (key, image sha256, caption), in order
    by_source: dict[str, dict] = field(default_factory=dict)  # source_id -> input/ingested/quarantined/by_reason
    engine: str = "local"
    n_nodes: int = 1  # machines that decoded and checked (the ray engine's cluster nodes used)

    @property
    def samples_per_s(self) -> float:
        return self.n_input / self.seconds if self.seconds else 0.0


class ParquetRowWriter:
    """Append rows, flushed as row groups so memory stays bounded; always writes a file (empty if no rows)."""

    def __init__(self, url: str, schema: pa.Schema, flush_every: int = 8192) -> None:
        fs, path = url_to_fs(url)
        self._file = fs.open(path, "wb")
        self._writer = pq.ParquetWriter(self._file, schema)
        self.schema, self.flush_every, self.rows = schema, flush_every, []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self._writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self.flush()
        self._writer.close()
        self._file.close()


def read_metadata(ingest_dir: str, columns: Sequence[str] | None = None):
    """OUT/ingest/metadata.parquet (local path or any fsspec URL) as a DataFrame: the one reader of that table."""
    import pandas as pd

    fs, path = url_to_fs(join(ingest_dir, "metadata.parquet"))
    with fs.open(path, "rb") as f:
        return pd.read_parquet(f, columns=list(columns) if columns is not None else None)


def printable(text: str) -> str:
    """Text safe for a Parquet string column: undecodable bytes (kept by surrogateescape) shown as \\xNN escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def iter_raw(targets: Sequence[tuple[str, str]], cfg: IngestConfig) -> Iterator[RawSample]:
    """All raw samples of all sources, in order, each tagged with its source's key namespace."""
    for kind, url in targets:
        yield from iter_source_samples(kind, url, source_tag(url), cfg)


def _count(by_source: dict[str, dict], r: Good | Bad) -> None:
    c = by_source.setdefault(source_id(r.source), {"input": 0, "ingested": 0, "quarantined": 0, "by_reason": {}})
    c["input"] += 1
    if isinstance(r, Bad):
        c["quarantined"] += 1
        c["by_reason"][r.reason] = c["by_reason"].get(r.reason, 0) + 1
    else:
        c["ingested"] += 1


def check_sources(targets: Sequence[tuple[str, str]], cfg: IngestConfig, engine: str, nodes: set[str]) -> Iterator[Good | Bad]:
    """Every sample of `targets` decoded and checked, in order: by this machine's worker processes (`local`), or by
    Ray Data tasks on the cluster Ray is connected to (`ray`, see components/data/ray_engine.py)."""
    if engine == "ray":
        from components.data.ray_engine import check_on_ray

        return check_on_ray(targets, cfg, nodes)
    if engine != "local":
        raise ValueError(f"ingest engine {engine!r}: must be 'local' or 'ray'")
    return check_all(iter_raw(targets, cfg), cfg)


def ingest(sources: Sequence[str], out_dir: str, cfg: IngestConfig, engine: Literal["local", "ray"] = "local") -> IngestResult:
    """Ingest `sources` into `out_dir` (normally OUT/ingest): shards/, metadata.parquet, quarantine.parquet, summary.json.

    The decoding and checks run on `engine`; everything order-dependent (duplicate keys, re-sharding, the tables,
    the counts) runs here, in this process, on results in source order: both engines write the same files.
    """
    from components.data.report import print_summary, progress_bar

    t0 = time.perf_counter()
    targets = expand_sources(sources)
    upstream = read_upstream_stats([u for k, u in targets if k == "tar"])
    by_reason: Counter[str] = Counter()
    seen: set[str] = set()  # ingested keys: namespaced per source, so only a key repeated within a source collides
    by_source: dict[str, dict] = {}
    version = hashlib.sha256()
    n_ok = 0
    nodes: set[str] = set()
    with atomic_dir(out_dir) as tmp:
        shards = TarShardWriter(join(tmp, "shards"), cfg.samples_per_shard)
        meta = ParquetRowWriter(join(tmp, "metadata.parquet"), META_SCHEMA)
        quarantine = ParquetRowWriter(join(tmp, "quarantine.parquet"), QUARANTINE_SCHEMA)
        n_tars = sum(k == "tar" for k, _ in targets)
        total = upstream["count"] if upstream["n_stats_files"] == n_tars == len(targets) else None  # known only from stats
        with progress_bar(cfg.progress, total) as advance:
            for r in check_sources(targets, cfg, engine, nodes):
                if isinstance(r, Good) and r.key in seen:
                    r = Bad(r.source, r.info["source_key"], "duplicate_key", "key already ingested from this source")
                _count(by_source, r)
                if isinstance(r, Bad):
                    by_reason[r.reason] += 1
                    quarantine.add({k: printable(v) for k, v in asdict(r).items()})
                else:
                    seen.add(r.key)
                    n_ok += 1
                    version.update(f"{r.key}\t{r.info['sha256']}\t{r.info['caption']}\n".encode("utf-8", "surrogateescape"))
                    meta.add({**r.info, "shard": shards.write_raw(r.members)})
                advance(1)
        shards.close()
        meta.close()
        quarantine.close()
        n_bad = sum(by_reason.values())
        seconds = time.perf_counter() - t0
        data_version = f"sha256:{version.hexdigest()[:16]}:{n_ok}rows"
        summary = {
            "data_version": data_version,
            "sources": list(sources), "n_source_files": len(targets),
            "n_input": n_ok + n_bad, "n_ingested": n_ok, "n_quarantined": n_bad,
            "quarantine_rate": n_bad / max(1, n_ok + n_bad), "quarantine_by_reason": dict(sorted(by_reason.items())),
            "n_shards": shards.shard + 1, "upstream_img2dataset_stats": upstream,
            "seconds": round(seconds, 3), "samples_per_s": round((n_ok + n_bad) / max(seconds, 1e-9), 1),
            "phash": "DCT-II of 32x32 grey, 8x8 low band > median; imagehash.phash-compatible, computed with scipy",
            "config": asdict(cfg),
            "engine": engine, "n_nodes": len(nodes) or 1,
            "by_source": by_source,
        }  # fmt: skip
        write_bytes(join(tmp, "summary.json"), json.dumps(summary, indent=2).encode())
    result = IngestResult(out_dir, n_ok + n_bad, n_ok, n_bad, dict(by_reason), shards.shard + 1, seconds, data_version,
                          by_source, engine, len(nodes) or 1)  # fmt: skip
    if cfg.progress:
        print_summary(result, upstream)
    return result
