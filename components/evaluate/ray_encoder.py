"""Batch inference of the image tower on Ray Data: a pool of actors holding the model (GPU actors when allowed).

`encode_images_ray` has `cache.encode_images`'s signature and result ((N, D) float32, L2-normalised, source order,
NaN rows for unreadable images), so `cached_image_features(..., encode=...)` stores it under the same cache key and
file as the local path (data.engine ray; evaluation and bias). What runs where:
- decode + eval transform through the local path's own per-sample code (`_IndexedDataset` items,
  `_StreamedDataset.rows` per part of a streamed source), `batch_size` images per batch: inside the CPU actors, or
  as CPU tasks feeding the GPU actors;
- the image tower: `map_batches` over a fixed pool of actors (`actor_plan`), each holding a CPU copy of the model
  moved to its device once: one GPU each (`num_gpus=1`) when `evaluate.device` allows a GPU and the cluster has
  one, else CPU actors with a share of the CPUs as torch threads;
- the driver writes each batch's rows into the (N, D) result by row index (batches arrive in any order).
Ray must be up (`infra.ray_launcher.ensure_ray`, called by the flow). Features equal the local path's to float
tolerance (batches are cut differently, so matmul rounding may differ).
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from components.io import absolute, warn_if_node_local

from .cache import _IndexedDataset, _StreamedDataset, as_source, autocast, eval_transform
from .images import FileImages, ImageSource, StreamedImages

log = logging.getLogger(__name__)


def _batch(rows: list[tuple[torch.Tensor, int, str]]) -> dict[str, np.ndarray]:
    """(tensor, row, error) items -> one Ray Data batch: idx (B,), pixels (B, 3, H, W) float32, error (B,) str."""
    return {"idx": np.array([r[1] for r in rows], np.int64), "pixels": torch.stack([r[0] for r in rows]).numpy(),
            "error": np.array([r[2] for r in rows], dtype=object)}  # fmt: skip


def _decode_indexed(batch: dict[str, np.ndarray], data: _IndexedDataset) -> Iterator[dict[str, np.ndarray]]:
    """Rows `batch["data"]` of an indexed source, decoded and transformed."""
    yield _batch([data[int(i)] for i in batch["data"]])


def _decode_streamed(batch: dict[str, np.ndarray], data: _StreamedDataset, parts: int, size: int) -> Iterator[dict]:
    """Part `data` of `parts` of a streamed source (its shards), `size` rows per output batch."""
    for part in batch["data"]:
        rows: list = []
        for row in data.rows(int(part), parts):
            rows.append(row)
            if len(rows) == size:
                yield _batch(rows)
                rows = []
        if rows:
            yield _batch(rows)


Decode = Callable[[dict[str, np.ndarray]], Iterator[dict[str, np.ndarray]]]


class ImageTower:
    """Ray Data actor: the model on this actor's device; batches of pixels -> L2-normalised features.

    With `decode` (CPU actors) its input is row / part ids and it decodes them itself: one stage, so a pool that
    holds every CPU cannot starve a separate decode stage. Without (GPU actors) its input is decoded batches.
    """

    def __init__(self, model: torch.nn.Module, device: str, precision: str, threads: int = 1, decode: Decode | None = None):
        import ray

        torch.set_num_threads(max(1, threads))  # the actor's CPUs (Ray reserved them)
        model = ray.get(model) if isinstance(model, ray.ObjectRef) else model
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.precision, self.decode = precision, decode

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        for b in self.decode(batch) if self.decode is not None else (batch,):
            pixels = np.require(b["pixels"], requirements="W")  # Ray Data's zero-copy batches are read-only
            x = torch.from_numpy(pixels).to(self.device, non_blocking=True)  # (B, 3, H, W)
            with autocast(self.device, self.precision):
                feats = self.model.encode_image(x)  # (B, D)
            yield {"idx": b["idx"], "features": F.normalize(feats.float(), dim=-1).cpu().numpy(), "error": b["error"]}


def actor_plan(device: str, actors: int | None = None) -> tuple[str, int, int]:
    """(actor device, pool size, CPUs per actor). GPU actors, one per cluster GPU, when `device` (evaluate.device)
    allows one and the cluster has GPUs; else CPU actors, one per 4 cluster CPUs, each using its share of the CPUs
    as torch threads (Ray Data fuses the decoding into them). `actors` sets the size, up to the cluster's GPUs /
    CPUs (a fixed pool larger than the cluster would wait forever)."""
    import ray

    res = ray.cluster_resources()
    gpus, cpus = int(res.get("GPU", 0)), max(1, int(res.get("CPU", 1)))
    if device == "cuda" and not gpus:
        raise ValueError("evaluate.device is cuda but the Ray cluster has no GPU: add GPU nodes or set evaluate.device auto")
    if device != "cpu" and gpus:
        pool = min(actors or gpus, gpus)
        return "cuda", pool, 1 if cpus > pool else 0  # leave the decode tasks a CPU
    pool = min(actors or max(1, cpus // 4), cpus)
    return "cpu", pool, cpus // pool


def _batches(ds: Any, progress: bool) -> Iterator[dict[str, np.ndarray]]:
    """The dataset's output blocks as numpy batches; Ray Data's progress bars only with `progress`."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    before, ctx.enable_progress_bars = ctx.enable_progress_bars, progress
    try:
        yield from ds.iter_batches(batch_size=None, batch_format="numpy")
    finally:
        ctx.enable_progress_bars = before


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
    if isinstance(source, FileImages) and source.locations:  # the actors may run in another working directory
        source = FileImages([absolute(p) for p in source.locations], source.fingerprint)
        warn_if_node_local(source.locations[0], f"{desc}: images such as")
    transform = transform or eval_transform(model)
    n = len(source)
    out = torch.full((n, model.cfg.embed_dim), float("nan"))  # (N, D)
    if n == 0:
        return out
    where, pool, threads = actor_plan(device, actors)
    # ids (rows, or parts of a streamed source) as blocks in the object store: no read task competing for CPUs
    if isinstance(source, StreamedImages):
        parts = max(1, min(n, len(getattr(source, "shards", ())) or int(ray.cluster_resources().get("CPU", 1))))
        ids, per_call = np.array_split(np.arange(parts, dtype=np.int64), parts), 1
        decode = functools.partial(_decode_streamed, data=_StreamedDataset(source, transform), parts=parts, size=batch_size)
    else:
        ids, per_call = np.array_split(np.arange(n, dtype=np.int64), -(-n // batch_size)), batch_size
        decode = functools.partial(_decode_indexed, data=_IndexedDataset(source, transform))
    ds = ray.data.from_numpy(ids)
    if where == "cuda":  # decode on CPU tasks, so the GPU actors only run the tower
        ds, per_call, decode = ds.map_batches(decode, batch_size=per_call), batch_size, None
    on_cpu = model if next(model.parameters()).device.type == "cpu" else copy.deepcopy(model).cpu()
    kwargs = {"model": ray.put(on_cpu), "device": where, "precision": precision, "threads": threads, "decode": decode}
    ds = ds.map_batches(
        ImageTower,
        batch_size=per_call,
        fn_constructor_kwargs=kwargs,
        compute=ray.data.ActorPoolStrategy(size=pool),
        num_gpus=1 if where == "cuda" else 0,
        num_cpus=threads,
    )
    seen = torch.zeros(n, dtype=torch.bool)
    for b in _batches(ds, progress):
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
