"""The CLIP score on Ray Data: shards read in parallel, pairs scored by an actor pool that holds the teacher.

Assumes Ray is up (the flow layer connects: infra.ray_launcher.ensure_ray). Each actor gets the teacher
from the object store (no shared filesystem needed) and runs the same `score_pairs` as the local path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .score import Teacher, iter_pairs, score_pairs, shard_rows


def _pairs_of_shard(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "image": b, "caption": c} for k, b, c in iter_pairs([row["shard"]])]


class _Scorer:
    """An actor's teacher: fetched once from the object store, moved to the GPU when the actor has one."""

    def __init__(self, teacher_ref: Any, use_gpu: bool) -> None:
        import ray

        self.teacher: Teacher = ray.get(teacher_ref[0]).to("cuda" if use_gpu else "cpu")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        scores = score_pairs(self.teacher, list(batch["image"]), [str(c) for c in batch["caption"]])
        return {"key": batch["key"], "score": scores}


def use_gpu_actors(device: str) -> bool:
    """GPU actors when filter.device allows it and the cluster has GPUs: evaluation's rule (`actor_plan`), whose error
    names the fix when the device is "cuda" and the cluster has no GPU."""
    from components.evaluate.ray_encoder import actor_plan

    return actor_plan(device)[0] == "cuda"


def score_shards_ray(
    shards: list[str], teacher: Teacher, batch_size: int = 64, actors: int = 2, device: str = "auto"
) -> dict[str, np.ndarray]:
    """{"key", "score"} for every pair of `shards`, as `score_shards_local` returns them (row order may differ)."""
    import ray

    gpu = use_gpu_actors(device)
    if not gpu:  # CPU actors hold their CPU for the whole run: leave one to the shard readers, or nothing feeds them
        actors = max(1, min(actors, int(ray.cluster_resources().get("CPU", 2)) - 1))
    ref = [ray.put(teacher.to("cpu"))]  # in a list: Ray resolves a bare ref argument, copying the model per call
    ds = ray.data.from_items(shard_rows(shards), override_num_blocks=max(1, len(shards)))
    ds = ds.flat_map(_pairs_of_shard)
    ds = ds.map_batches(
        _Scorer,
        fn_constructor_kwargs={"teacher_ref": ref, "use_gpu": gpu},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpu else 0,
        num_cpus=1,
    )
    keys: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for b in ds.iter_batches(batch_format="numpy", batch_size=None):
        keys.append(np.asarray(b["key"], dtype=object))
        scores.append(np.asarray(b["score"], dtype=np.float32))
    if not keys:
        return {"key": np.zeros(0, dtype=object), "score": np.zeros(0, np.float32)}
    return {"key": np.concatenate(keys), "score": np.concatenate(scores)}
