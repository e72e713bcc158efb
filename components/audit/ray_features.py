"""Dedup/overlap image features on Ray Data: one task per training shard, each running the local path's per-image code.

`shards.shard_features(..., engine="ray")` calls this. Each task reads one shard (`shards._shard_images`, the local
reader) and returns `shards.image_features` of the images it needs, tagged with their row in metadata.parquet; the
driver writes them into the same (N, D) / (N, T, T, 3) arrays as the local path, so the candidate search and the
verification after it (single process, components/audit/README.md "Scale") see identical inputs. Ray must be up
(`infra.ray_launcher.ensure_ray`, called by the flow).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd


def shard_tasks(meta: pd.DataFrame, pos: Mapping[str, int]) -> list[dict]:
    """One work item per shard that holds a needed key: {"shard", "keys", "pos"} (row of each key in `meta`)."""
    frame = pd.DataFrame({"key": meta["key"].astype(str), "shard": meta["shard"].astype(str)})
    frame = frame[frame["key"].isin(pos)]
    return [
        {"shard": str(shard), "keys": list(g["key"]), "pos": [pos[k] for k in g["key"]]}
        for shard, g in frame.groupby("shard", sort=True)
    ]


def _shard_feature_batch(batch: pd.DataFrame, shards_dir: str, size: int) -> Iterator[dict[str, np.ndarray]]:
    """Ray task: features of every needed image of the shard(s) in `batch`, one output batch per shard."""
    from .shards import _shard_images, image_features

    for _, task in batch.iterrows():
        at = dict(zip(map(str, task["keys"]), map(int, task["pos"])))
        sub = pd.DataFrame({"key": list(at), "shard": task["shard"]})
        rows = [(at[key], *image_features(img, size)) for key, img in _shard_images(shards_dir, sub, set(at))]
        if rows:
            yield {"pos": np.array([r[0] for r in rows], np.int64),
                   "vec": np.stack([r[1] for r in rows]), "thumb": np.stack([r[2] for r in rows])}  # fmt: skip


def ray_feature_rows(
    shards_dir: str, meta: pd.DataFrame, pos: Mapping[str, int], size: int, concurrency: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(rows (B,), descriptors (B, D), thumbnails (B, T, T, 3)) per shard, as the Ray tasks finish (any order).

    `concurrency`: at most this many tasks at once (default: as many as the cluster's CPUs allow).
    """
    import ray.data

    from components.io import absolute, warn_if_node_local

    shards_dir = absolute(shards_dir)  # the tasks may run in another working directory
    warn_if_node_local(shards_dir, "the training shards")
    tasks = shard_tasks(meta, pos)
    if not tasks:
        return
    ds = ray.data.from_items(tasks, override_num_blocks=len(tasks)).map_batches(
        _shard_feature_batch,
        batch_size=1,
        batch_format="pandas",
        fn_kwargs={"shards_dir": shards_dir, "size": size},
        compute=ray.data.TaskPoolStrategy(size=concurrency),
    )
    for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
        yield b["pos"], b["vec"], b["thumb"]
