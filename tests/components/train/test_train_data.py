import itertools

import pytest
import torch
from torch.utils.data import DataLoader

import clip_core
from components.train.data import ShardStream, StreamSpec, build_loader, expand_shards


def _keys(spec: StreamSpec, num_workers: int, n: int) -> list[str]:
    """The first n sample keys one rank reads, through a real DataLoader with `num_workers` processes."""
    ds = ShardStream(spec, shuffle_buffer=8)
    if num_workers == 0:
        return [s["__key__"] for s in itertools.islice(iter(ds), n)]
    loader = DataLoader(ds, batch_size=None, num_workers=num_workers, collate_fn=lambda x: x)
    return [s["__key__"] for s in itertools.islice(iter(loader), n)]


def test_expand_shards_glob_and_brace(shape_shards) -> None:
    d = shape_shards[0].rsplit("/", 1)[0]
    assert expand_shards(f"{d}/*.tar") == shape_shards
    assert expand_shards(f"{d}/shard-{{000000..000001}}.tar") == shape_shards[:2]


def test_ranks_and_workers_read_disjoint_samples_covering_the_data(shape_shards) -> None:
    # 2 ranks x 2 loader workers = 4 slots over 4 shards of 64: one pass is 64 samples per slot
    per_rank = [_keys(StreamSpec(shape_shards, seed=0, epoch=0, rank=r, world=2), 2, 128) for r in range(2)]
    for keys in per_rank:
        assert len(set(keys)) == 128
    assert not set(per_rank[0]) & set(per_rank[1])
    assert len(set(per_rank[0]) | set(per_rank[1])) == 256  # all samples, each once


def test_fewer_shards_than_slots_splits_by_sample(shape_shards) -> None:
    shards = shape_shards[:1]  # 1 shard, 3 ranks: sample-level split
    per_rank = [_keys(StreamSpec(shards, seed=0, epoch=0, rank=r, world=3), 0, 21) for r in range(3)]
    assert all(len(set(k)) == 21 for k in per_rank)
    assert not (set(per_rank[0]) & set(per_rank[1]) or set(per_rank[1]) & set(per_rank[2]) or set(per_rank[0]) & set(per_rank[2]))


def test_virtual_epoch_is_replayable_and_epochs_differ(shape_shards, tokenizer) -> None:
    tf = clip_core.image_transform(32, is_train=True)

    def first_batches(epoch: int, n: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
        it = build_loader(StreamSpec(shape_shards, 0, epoch, 1, 2), tf, tokenizer, 16, num_workers=2, shuffle_buffer=32)
        return list(itertools.islice(it, n))

    a, b, c = first_batches(5), first_batches(5), first_batches(6)
    for (ia, ta), (ib, tb) in zip(a, b):
        assert torch.equal(ia, ib) and torch.equal(ta, tb)  # same pixels incl. random crops, same tokens
    assert not torch.equal(a[0][0], c[0][0])
    assert a[0][0].shape == (16, 3, 32, 32) and a[0][1].shape == (16, 32)


def test_shards_on_any_fsspec_url(shape_shards) -> None:
    import uuid

    import fsspec

    fs = fsspec.filesystem("memory")
    root = f"/shards-{uuid.uuid4().hex}"
    for p in shape_shards[:2]:
        fs.put_file(p, f"{root}/{p.rsplit('/', 1)[1]}")
    urls = expand_shards(f"memory://{root}/*.tar")
    assert len(urls) == 2 and all(u.startswith("memory://") for u in urls)
    keys = _keys(StreamSpec(urls, seed=0, epoch=0, rank=0, world=1), 0, 128)
    assert len(set(keys)) == 128  # both shards, each sample once in the first pass


def test_excluded_keys_never_reach_a_batch(shape_shards, tokenizer) -> None:
    from components.train.data import usable

    assert usable({"__key__": "a", "png": b"", "txt": b""}) and not usable({"__key__": "a", "png": b""})
    assert not usable({"__key__": "a", "png": b"", "txt": b""}, frozenset({"a"}))
    keys = _keys(StreamSpec(shape_shards, seed=0, epoch=0, rank=0, world=1), 0, 64)
    tf = clip_core.image_transform(32, is_train=False)
    spec = StreamSpec(shape_shards, 0, 0, 0, 1)
    keep = build_loader(spec, tf, tokenizer, 16, num_workers=0, shuffle_buffer=8)
    spec_ex = StreamSpec(shape_shards, 0, 0, 0, 1, exclude=frozenset(keys[::2]))
    drop = build_loader(spec_ex, tf, tokenizer, 16, num_workers=0, shuffle_buffer=8)
    # same stream order, every other sample removed: the excluded run's first batch differs from the full run's
    assert not torch.equal(next(iter(keep))[0], next(iter(drop))[0])


def _shard_of(shards: list[str]) -> dict[str, int]:
    from components.train.data import _read_tars

    return {x["__key__"]: i for i, url in enumerate(shards) for x in _read_tars([url])}


def test_weighted_sources_mix_in_proportion_and_replay(shape_shards) -> None:
    """Sources a (1 shard) and b (3 shards) weighted 3:1 -> 75% of the samples from a, whatever the shard counts."""
    shard = _shard_of(shape_shards)
    mixture = [{"urls": shape_shards[:1], "weight": 3.0}, {"urls": shape_shards[1:], "weight": 1.0}]
    for resampled in (False, True):
        spec = StreamSpec(mixture, seed=0, epoch=0, rank=0, world=1, resampled=resampled)
        keys = [s["__key__"] for s in itertools.islice(iter(ShardStream(spec, shuffle_buffer=8)), 800)]
        frac_a = sum(shard[k] == 0 for k in keys) / len(keys)
        assert abs(frac_a - 0.75) < 0.05, (resampled, frac_a)  # by shards 0.25, by sources 0.5
        again = [s["__key__"] for s in itertools.islice(iter(ShardStream(spec, shuffle_buffer=8)), 800)]
        assert again == keys  # a virtual epoch replays exactly: resume stays step-exact
    with pytest.raises(ValueError, match="weight"):
        from components.train.config import TrainConfig

        TrainConfig(shards=({"url": "a/*.tar", "weight": 0},))


def test_resampled_draws_shards_with_replacement(shape_shards) -> None:
    """Without replacement each pass reads every shard once; resampled (seeded) repeats some before others."""
    shard = _shard_of(shape_shards)

    def shard_sequence(resampled: bool, epoch: int = 0) -> list[int]:
        spec = StreamSpec(shape_shards, seed=0, epoch=epoch, rank=0, world=1, resampled=resampled)
        keys = [s["__key__"] for s in itertools.islice(iter(ShardStream(spec, shuffle_buffer=0)), 64 * 12)]
        return [shard[k] for k in keys[::64]]  # buffer 0: one shard's 64 samples in a row

    plain = shard_sequence(False)
    assert all(sorted(plain[i : i + 4]) == [0, 1, 2, 3] for i in range(0, 12, 4))  # 3 passes, each a permutation
    resampled = shard_sequence(True)
    assert any(sorted(resampled[i : i + 4]) != [0, 1, 2, 3] for i in range(0, 12, 4))
    assert resampled == shard_sequence(True) and resampled != shard_sequence(True, epoch=1)


def test_open_clip_double_colon_joins_sources(shape_shards) -> None:
    from components.train.data import resolve_sources, source_urls

    d = shape_shards[0].rsplit("/", 1)[0]
    joined = resolve_sources(f"{d}/shard-000000.tar::{d}/shard-{{000002..000003}}.tar", default="unused")
    assert joined == [shape_shards[0], *shape_shards[2:]]
    mix = resolve_sources(({"url": f"{d}/shard-000000.tar", "weight": 2},), default="unused")
    assert mix == [{"urls": shape_shards[:1], "weight": 2.0}] and source_urls(mix) == shape_shards[:1]
