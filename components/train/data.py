"""Webdataset training stream: shards from any fsspec URL, split by rank and loader worker, seeded per virtual epoch.

Why not `wds.ResampledShards`: resampling draws shards with replacement, so ranks overlap and a
stream cannot be replayed from a position. Here a *virtual epoch* `e` is a fixed, infinite,
per-(rank, worker) stream whose order depends only on (seed, e, rank, worker): each pass over
the data re-permutes the shard list with a seed shared by all ranks and hands shard i to
slot i mod (world * workers). With fewer shards than slots, every slot reads all shards and keeps
sample j when j mod slots == its slot. The loop starts a new virtual epoch at every checkpoint,
so a run resumed from step k reads exactly the batches an uninterrupted run reads after k.

Several sources (`train.shards` as a list of {url, weight}) each get such a stream, and a seeded
RNG of the same (seed, e, rank, worker) picks the source of every sample with probability
weight / sum(weights). `resampled` (open_clip's `--dataset-resampled`, the usual mode at scale)
replaces each source's permutation passes by shards drawn with replacement from a seeded RNG:
slots then read overlapping data, but a virtual epoch still replays exactly, so resume stays exact.
"""

from __future__ import annotations

import glob
import itertools
import os
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
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


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from integers and tags, stable across processes (unlike `hash`)."""
    return random.Random(" ".join(str(p) for p in parts)).getrandbits(63)


def resolve_sources(shards: str | Sequence[Any], default: str) -> list[str] | list[dict[str, Any]]:
    """`train.shards` -> what a worker streams: a flat URL list (one source) or [{"urls", "weight"}, ...].

    A string is one source; open_clip's "a::b" joins the shard lists of a and b (each shard drawn
    alike, as open_clip without upsampling factors). A list of {url, weight} is a weighted mixture.
    """
    if isinstance(shards, str):
        return sorted({u for part in (shards or default).split("::") for u in expand_shards(part)})
    sources = [(s["url"], s["weight"]) if isinstance(s, dict) else (s.url, s.weight) for s in shards]
    return [{"urls": expand_shards(url), "weight": float(weight)} for url, weight in sources]


def source_urls(sources: list[str] | list[dict[str, Any]]) -> list[str]:
    """Every shard URL of `resolve_sources`' result, in order (for tokenizer training, fingerprints, run.json)."""
    return [u for s in sources for u in ([s] if isinstance(s, str) else s["urls"])]


@dataclass
class Source:
    """One source of the stream: its shard URLs and its relative weight."""

    urls: list[str]
    weight: float = 1.0


@dataclass
class StreamSpec:
    """What decides a stream: the shards, the slot it reads and the virtual epoch.

    `urls` is a list of shard URLs (one source) or a list of {"urls", "weight"} (a weighted mixture).
    """

    urls: list[str] | list[dict[str, Any]]
    seed: int
    epoch: int
    rank: int
    world: int
    exclude: frozenset[str] = frozenset()  # sample keys to skip (the audit's dedup: OUT/audit/exclude_keys.txt)
    resampled: bool = False  # shards drawn with replacement instead of permutation passes
    keep: frozenset[str] | None = None  # only these keys train (the CLIP-score filter: OUT/filter/kept_keys.txt); None = all
    sources: list[Source] = field(init=False)

    def __post_init__(self) -> None:
        if self.urls and all(isinstance(u, str) for u in self.urls):
            self.sources = [Source(list(self.urls))]
        else:
            self.sources = [Source(list(s["urls"]), float(s["weight"])) for s in self.urls]


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
        streams = [self._source(i, src.urls, slot, slots, own_seed) for i, src in enumerate(s.sources)]
        if len(streams) == 1:
            yield from streams[0]
            return
        pick = random.Random(derive_seed(own_seed, "mix"))
        cum = list(itertools.accumulate(src.weight for src in s.sources))
        which = range(len(streams))
        while True:  # one seeded draw per sample: the mixture replays exactly within a virtual epoch
            yield next(streams[pick.choices(which, cum_weights=cum)[0]])

    def _source(self, i: int, urls: list[str], slot: int, slots: int, own_seed: int) -> Iterator[dict[str, Any]]:
        """One source's endless stream for this slot (source 0 keeps the single-source seeds)."""
        s = self.spec
        tag = () if i == 0 else ("source", i)
        if s.resampled:  # open_clip's ResampledShards: each slot draws shards with replacement, seeded
            draw = random.Random(derive_seed(own_seed, "resample", *tag))
            shards = (draw.choice(urls) for _ in itertools.count())
            rng = random.Random(derive_seed(own_seed, "shuffle", *tag))
            yield from wds.filters._shuffle(_read_tars(shards), bufsize=self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng)
            return
        split_shards = len(urls) >= slots
        for pass_no in itertools.count():
            order = list(urls)
            random.Random(derive_seed(s.seed, s.epoch, pass_no, *tag)).shuffle(order)  # same on every rank
            mine = order[slot::slots] if split_shards else order
            samples = _read_tars(mine)
            if not split_shards:
                samples = (x for j, x in enumerate(samples) if j % slots == slot)
            yield from wds.filters._shuffle(
                samples,
                bufsize=self.shuffle_buffer,
                initial=self.shuffle_buffer,
                rng=random.Random(derive_seed(own_seed, pass_no, *tag)),
            )


def _read_tars(urls: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The shards' samples, grouped by key (the project's one shard reader)."""
    yield from iter_shard_samples(urls)


def usable(sample: dict[str, Any], exclude: frozenset[str] = frozenset(), keep: frozenset[str] | None = None) -> bool:
    """A sample trains when it has an image and a caption, its key is not excluded (dedup) and, with a kept list
    (the CLIP-score filter), is in it."""
    key = sample.get("__key__")
    if key in exclude or (keep is not None and key not in keep):
        return False
    return any(e in sample for e in SHARD_IMAGE_EXTS) and "txt" in sample


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
        wds.select(lambda x: usable(x, spec.exclude, spec.keep)),
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
