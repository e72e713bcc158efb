"""Batch inference of the image tower on Ray Data: decode tasks, then a pool of actors holding the model.

`encode_images_ray` has `cache.encode_images`'s signature and result ((N, D) float32, L2-normalised, source order,
NaN rows for unreadable images), so `cached_image_features(..., encode=...)` stores it under the same cache key and
file as the local path (data.engine ray; evaluation and bias). What runs where:
- decode + eval transform: Ray tasks (CPU), through the local path's own per-sample code (`_IndexedDataset` items,
  `_StreamedDataset.rows` per part of a streamed source), `batch_size` images per batch;
- the image tower: `map_batches` over a fixed pool of actors, each holding a CPU copy of the model moved to its
  device once: one GPU each (`num_gpus=1`) when `evaluate.device` allows a GPU and the cluster has one, else CPU;
- the driver writes each batch's rows into the (N, D) result by row index (batches arrive in any order).
Ray must be up (`infra.ray_launcher.ensure_ray`, called by the flow). Features equal the local path's to float
tolerance (batches are cut differently, so matmul rounding differs).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .cache import _IndexedDataset, _StreamedDataset, as_source, autocast, eval_transform
from .images import ImageSource, StreamedImages

log = logging.getLogger(__name__)


def _batch(rows: list[tuple[torch.Tensor, int, str]]) -> dict[str, np.ndarray]:
    """(tensor, row, error) items -> one Ray Data batch: idx (B,), pixels (B, 3, H, W) float32, error (B,) str."""
    return {"idx": np.array([r[1] for r in rows], np.int64), "pixels": torch.stack([r[0] for r in rows]).numpy(),
            "error": np.array([r[2] for r in rows], dtype=object)}  # fmt: skip


def _decode_indexed(batch: dict[str, np.ndarray], data: _IndexedDataset) -> dict[str, np.ndarray]:
    """Ray task: rows `batch["data"]` of an indexed source, decoded and transformed."""
    return _batch([data[int(i)] for i in batch["data"]])


def _decode_streamed(batch: dict[str, np.ndarray], data: _StreamedDataset, parts: int, size: int) -> Iterator[dict]:
    """Ray task: part `data` of `parts` of a streamed source (its shards), `size` rows per output batch."""
    for part in batch["data"]:
        rows: list = []
        for row in data.rows(int(part), parts):
            rows.append(row)
            if len(rows) == size:
                yield _batch(rows)
                rows = []
        if rows:
            yield _batch(rows)


class ImageTower:
    """Ray Data actor: the model on this actor's device; a batch of pixels -> L2-normalised features."""

    def __init__(self, model: torch.nn.Module, device: str, precision: str):
        import ray

        model = ray.get(model) if isinstance(model, ray.ObjectRef) else model
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.precision = precision

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = torch.from_numpy(batch["pixels"]).to(self.device, non_blocking=True)  # (B, 3, H, W)
        with autocast(self.device, self.precision):
            feats = self.model.encode_image(x)  # (B, D)
        return {"idx": batch["idx"], "features": F.normalize(feats.float(), dim=-1).cpu().numpy(), "error": batch["error"]}


def actor_plan(device: str, actors: int | None = None) -> tuple[str, int]:
    """(actor device, pool size): GPU actors, one per cluster GPU, when `device` (evaluate.device) allows one and the
    cluster has GPUs; else CPU actors, one per cluster CPU (Ray Data then fuses the decoding into them). `actors`
    overrides the size, up to the cluster's GPUs / CPUs (a fixed pool larger than the cluster would wait forever)."""
    import ray

    res = ray.cluster_resources()
    gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 1))
    if device == "cuda" and not gpus:
        raise ValueError("evaluate.device is cuda but the Ray cluster has no GPU: add GPU nodes or set evaluate.device auto")
    if device != "cpu" and gpus:
        return "cuda", min(actors or gpus, gpus)
    return "cpu", min(actors or cpus, cpus)


def encode_images_ray(
    model: torch.nn.Module,
    images: Sequence[str] | ImageSource,
    transform: Callable | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    precision: str = "fp32",
    progress: bool = False,
    desc: str = "encode",
    *,
    device: str = "auto",
    actors: int | None = None,
) -> torch.Tensor:
    """`encode_images` on Ray Data -> (N, D) float32 features, source order; NaN rows for unreadable images.

    `num_workers` (DataLoader workers) is unused: decoding runs as Ray tasks. `device`: evaluate.device;
    `actors`: the pool size (default: see `actor_plan`).
    """
    import ray
    import ray.data

    source = as_source(images)
    transform = transform or eval_transform(model)
    n = len(source)
    out = torch.full((n, model.cfg.embed_dim), float("nan"))  # (N, D)
    if n == 0:
        return out
    where, pool = actor_plan(device, actors)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    if isinstance(source, StreamedImages):
        parts = max(1, min(n, len(getattr(source, "shards", ())) or int(ray.cluster_resources().get("CPU", 1))))
        ds = ray.data.from_numpy(np.array_split(np.arange(parts, dtype=np.int64), parts)).map_batches(
            _decode_streamed, batch_size=1, fn_kwargs={"data": _StreamedDataset(source, transform), "parts": parts,
                                                       "size": batch_size})  # fmt: skip
    else:
        # row ids as blocks in the object store, not a read task (CPU actors may hold every CPU); batch_size rows a block
        ids = np.array_split(np.arange(n, dtype=np.int64), -(-n // batch_size))
        ds = ray.data.from_numpy(ids).map_batches(
            _decode_indexed, batch_size=batch_size, fn_kwargs={"data": _IndexedDataset(source, transform)}
        )
    on_cpu = model if next(model.parameters()).device.type == "cpu" else copy.deepcopy(model).cpu()
    ds = ds.map_batches(
        ImageTower,
        batch_size=batch_size,
        fn_constructor_kwargs={"model": ray.put(on_cpu), "device": where, "precision": precision},
        compute=ray.data.ActorPoolStrategy(size=pool),
        num_gpus=1 if where == "cuda" else 0,
        num_cpus=1,
    )
    seen = torch.zeros(n, dtype=torch.bool)
    for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
        ok = torch.tensor([not e for e in b["error"]], dtype=torch.bool)
        idx = torch.tensor(b["idx"])
        out[idx[ok]] = torch.tensor(b["features"])[ok]
        seen[idx] = True
        for e in b["error"]:
            if e:
                log.warning("%s: unreadable image skipped (%s)", desc, e)
    if not seen.all():
        log.warning("%s: %d image(s) never delivered by the source; counted as unreadable", desc, int((~seen).sum()))
    return out
