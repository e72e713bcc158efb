"""Webdataset training stream: shards from any fsspec URL, split by rank and loader worker, seeded per virtual epoch.

Why not `wds.ResampledShards`: resampling draws shards with replacement, so ranks overlap and a
stream cannot be replayed from a position. Here a *virtual epoch* `e` is a fixed, infinite,
per-(rank, worker) stream whose order depends only on (seed, e, rank, worker): each pass over
the data re-permutes the shard list with a seed shared by all ranks and hands shard i to
slot i mod (world * workers). With fewer shards than slots, every slot reads all shards and keeps
sample j when j mod slots == its slot. The loop starts a new virtual epoch at every checkpoint,
so a run resumed from step k reads exactly the batches an uninterrupted run reads after k.
"""

from __future__ import annotations

import glob
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import torch
import webdataset as wds
from braceexpand import braceexpand
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from components.data.tarstream import SHARD_IMAGE_EXTS, iter_shard_samples
from components.io import absolute, is_url


def expand_shards(spec: str) -> list[str]:
    """Brace patterns and globs (local or any fsspec URL) -> a sorted list of shard URLs.

    Local paths become absolute: Ray workers run in another working directory.
    """
    urls: list[str] = []
    for part in braceexpand(spec):
        if any(c in part for c in "*?["):
            if is_url(part):
                fs, _ = fsspec.core.url_to_fs(part)
                protocol = part.split("://", 1)[0]
                urls += [f"{protocol}://{p}" if not p.startswith(f"{protocol}://") else p for p in fs.glob(part)]
            else:
                urls += [os.path.abspath(p) for p in glob.glob(part)]
        else:
            urls.append(absolute(part))
    if not urls:
        raise FileNotFoundError(f"no training shards match {spec!r}; run `clip-pipeline data ingest` or set train.shards")
    return sorted(set(urls))


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across processes (unlike `hash`)."""
    return random.Random(" ".join(str(p) for p in parts)).getrandbits(63)


@dataclass
class StreamSpec:
    """What decides a stream: the shards, the slot it reads and the virtual epoch."""

    urls: list[str]
    seed: int
    epoch: int
    rank: int
    world: int
    exclude: frozenset[str] = frozenset()  # sample keys to skip (the audit's dedup: OUT/audit/exclude_keys.txt)


class ShardStream(IterableDataset):
    """Infinite stream of raw samples ({"__key__", "png", "txt", ...}) for one (rank, loader worker)."""

    def __init__(self, spec: StreamSpec, shuffle_buffer: int = 500):
        self.spec = spec
        self.shuffle_buffer = shuffle_buffer

    def _slot(self) -> tuple[int, int, int]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        return self.spec.rank * nw + wid, self.spec.world * nw, wid

    def __iter__(self) -> Iterator[dict[str, Any]]:
        s = self.spec
        slot, slots, wid = self._slot()
        own_seed = derive_seed(s.seed, s.epoch, s.rank, wid)
        # augmentations (RandomResizedCrop) draw from the global RNGs: seed them per stream
        torch.manual_seed(own_seed)
        random.seed(own_seed)
        split_shards = len(s.urls) >= slots
        pass_no = 0
        while True:
            order = list(s.urls)
            random.Random(derive_seed(s.seed, s.epoch, pass_no)).shuffle(order)  # same on every rank
            mine = order[slot::slots] if split_shards else order
            samples = _read_tars(mine)
            if not split_shards:
                samples = (x for j, x in enumerate(samples) if j % slots == slot)
            yield from wds.filters._shuffle(
                samples,
                bufsize=self.shuffle_buffer,
                initial=self.shuffle_buffer,
                rng=random.Random(derive_seed(own_seed, pass_no)),
            )
            pass_no += 1


def _read_tars(urls: list[str]) -> Iterator[dict[str, Any]]:
    """The shards' samples, grouped by key (the project's one shard reader)."""
    yield from iter_shard_samples(urls)


def usable(sample: dict[str, Any], exclude: frozenset[str] = frozenset()) -> bool:
    """A sample trains when it has an image and a caption and its key is not excluded (dedup)."""
    return sample.get("__key__") not in exclude and any(e in sample for e in SHARD_IMAGE_EXTS) and "txt" in sample


def build_dataset(
    spec: StreamSpec,
    transform: Callable,
    tokenize: Callable[[list[str]], torch.Tensor],
    batch_size: int,
    shuffle_buffer: int = 500,
) -> wds.DataPipeline:
    """Decoded, transformed and tokenised batches: (images (B, 3, S, S), tokens (B, L))."""

    def collate(samples: list[tuple]) -> tuple[torch.Tensor, torch.Tensor]:
        images, captions = zip(*samples)
        return torch.stack(images), tokenize(list(captions))

    return wds.DataPipeline(
        ShardStream(spec, shuffle_buffer),
        wds.select(lambda x: usable(x, spec.exclude)),
        wds.decode("pil", handler=wds.warn_and_continue),
        wds.to_tuple(";".join(SHARD_IMAGE_EXTS), "txt"),
        wds.map_tuple(transform, str),
        wds.batched(batch_size, collation_fn=collate, partial=False),
    )


def build_loader(
    spec: StreamSpec,
    transform: Callable,
    tokenize: Callable[[list[str]], torch.Tensor],
    batch_size: int,
    num_workers: int,
    shuffle_buffer: int = 500,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An endless iterator of batches; loader workers interleave round-robin, so the order is deterministic."""
    ds = build_dataset(spec, transform, tokenize, batch_size, shuffle_buffer)
    if num_workers == 0:
        return iter(ds)
    loader = DataLoader(ds, batch_size=None, num_workers=num_workers, persistent_workers=False, prefetch_factor=4)
    return iter(loader)
