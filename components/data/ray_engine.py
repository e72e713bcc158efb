"""Ingest's `data.engine: ray`: the same per-sample checks (checks.check_batch) as a Ray Data map over the source files.

What runs where:
- Ray Data tasks, spread over the cluster: one task per source file (a tar shard or a manifest) reads
  it (`sources.iter_source_samples`), decodes, checks and hashes every sample with the local path's
  code (`workers.check_inline` -> `checks.check_batch`), and returns the results a batch at a time.
- The driver (the process that calls `ingest`) receives the results in source order (Ray Data's
  `preserve_order`; the order is also asserted here) and does the order-dependent part exactly as
  the local engine: duplicate keys, re-sharding into `shards/`, the metadata and quarantine
  tables, the counts and the data version. So the outputs are byte-identical to `engine: local`.
  The tables stay one Parquet file each (row groups flushed as the driver goes), not partitioned
  Parquet: there is one writer, and every reader of OUT/ingest works unchanged with both engines.

Where this stops scaling: every ingested byte passes through the driver once (a normalised sample's
tar members), so the driver's network and its writes to OUT bound the run: ~13k samples/s of 91 KiB
images on 10 GbE, ~2k through one 200 MB/s upload stream (shards are written one at a time), i.e. 1-3
nodes of 32 cores (infra/SCALING.md, "Ingest on Ray Data", has the cost model and the next steps).
Decoding, the checks and hashing, the costly part on one machine, scale with the cluster. A manifest
is one task: split a large one into several files (as DataComp's and LAION's metadata are) to spread
its rows. A sample that kills the decoding process (a crash in a native decoder) is quarantined as
`decoder_crash` by the local engine; on Ray, its task is retried (`MAX_TASK_RETRIES`) and then the
run fails naming the error.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from components.data.checks import Bad, Good, check_batch
from components.data.config import IngestConfig
from components.data.sources import iter_source_samples, source_tag
from components.data.workers import CheckFn, check_inline

MAX_TASK_RETRIES = 3  # a task whose worker process died (Ray Data's default, -1, would retry forever)
RESULT_SCHEMA = pa.schema([("unit", pa.int64()), ("part", pa.int64()), ("node", pa.string()), ("results", pa.large_binary())])


def check_on_ray(
    targets: Sequence[tuple[str, str]], cfg: IngestConfig, nodes: set[str] | None = None, check: CheckFn = check_batch
) -> Iterator[Good | Bad]:
    """Results for every sample of `targets` ([(kind, url)] from `expand_sources`), in source order, checked by
    Ray Data tasks on the cluster Ray is connected to (the caller connects). `nodes` collects the node ids used."""
    import ray
    import ray.data

    if not targets:
        return
    in_memory = [u for _, u in targets if u.startswith("memory://")]
    if in_memory:  # fsspec's memory filesystem lives in this process: a Ray worker would find nothing there
        raise ValueError(f"ingest source {in_memory[0]!r} is in this process's memory; use data.engine=local for memory://")
    # key namespaces and relative paths are resolved as this process names them (workers run in other directories)
    units = [{"unit": i, "kind": k, "url": u, "tag": source_tag(u)} for i, (k, u) in enumerate(targets)]
    ds = ray.data.from_items(units, override_num_blocks=len(units))  # one task per source file
    with warnings.catch_warnings():  # max_retries has no named parameter yet (Ray 2.60 deprecates **ray_remote_args)
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        ds = ds.map_batches(
            check_units,
            batch_size=1,
            batch_format="pyarrow",
            fn_kwargs={"cfg": cfg, "cwd": os.getcwd(), "check": check},
            num_cpus=1,
            max_retries=MAX_TASK_RETRIES,
        )
    ds.context.execution_options.preserve_order = True
    ds.context.enable_progress_bars = False  # ingest shows its own bar
    last = (-1, -1)
    try:
        for row in ds.iter_rows():
            at = (row["unit"], row["part"])
            if at <= last:  # never expected: the driver's duplicate-key and shard order depend on it
                raise RuntimeError(f"Ray Data returned ingest results out of order: {at} after {last}")
            last = at
            if nodes is not None:
                nodes.add(row["node"])
            yield from pickle.loads(row["results"])
    except ray.exceptions.WorkerCrashedError as e:
        done = f"results came in order up to {targets[last[0]][1]}" if last[0] >= 0 else "no results had come yet"
        raise RuntimeError(
            f"a Ray worker process died {MAX_TASK_RETRIES + 1} times decoding one source file ({done}): a sample that "
            "crashes a native decoder, or a worker out of memory. data.engine=local quarantines such a sample as "
            "decoder_crash and goes on; the worker logs name the file."
        ) from e


def check_units(batch: pa.Table, cfg: IngestConfig, cwd: str, check: CheckFn = check_batch) -> Iterator[pa.Table]:
    """The Ray Data task: each source file in `batch` read and checked, one output row per check batch."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    for unit in batch.to_pylist():
        with working_dir(cwd):
            samples = iter_source_samples(unit["kind"], unit["url"], unit["tag"], cfg)
            for part, results in enumerate(check_inline(samples, cfg, check)):
                row: dict[str, Any] = {"unit": unit["unit"], "part": part, "node": node, "results": pickle.dumps(results)}
                yield pa.Table.from_pylist([row], schema=RESULT_SCHEMA)


@contextlib.contextmanager
def working_dir(path: str) -> Iterator[None]:
    """Run in the driver's working directory when this node has it, so relative source paths (and the paths in
    quarantine details) mean what they mean to the driver; elsewhere only absolute paths and URLs can be read."""
    old = os.getcwd()
    try:
        os.chdir(path)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        os.chdir(old)
