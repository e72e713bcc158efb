"""Ordered, bounded map of the per-sample checks over worker processes that survives a worker dying mid-sample."""

from __future__ import annotations

import multiprocessing as mp
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from PIL import Image

from components.data.checks import Bad, Good, RawSample, check_batch
from components.data.config import IngestConfig

CheckFn = Callable[[list[RawSample], IngestConfig], list[Good | Bad]]


BATCH_BYTES = 32 * 2**20  # a batch also closes at this size, so large images keep in-flight memory bounded


def batches(samples: Iterator[RawSample], n: int, max_bytes: int = BATCH_BYTES) -> Iterator[list[RawSample]]:
    """Group a stream into lists of at most `n` samples or about `max_bytes` of member data."""
    batch: list[RawSample] = []
    size = 0
    for s in samples:
        batch.append(s)
        size += sum(len(v) for v in s.files.values())
        if len(batch) == n or size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def check_all(samples: Iterator[RawSample], cfg: IngestConfig, check: CheckFn = check_batch) -> Iterator[Good | Bad]:
    """Results in input order; at most `max_in_flight` batches (each <= `batch_size` samples, ~32 MiB) are queued."""
    if cfg.num_workers == 0:
        for results in check_inline(samples, cfg, check):
            yield from results
        return
    pool = _Pool(cfg, check)
    pending: deque[list] = deque()  # [batch, future]
    try:
        for b in batches(samples, cfg.batch_size):
            pending.append([b, pool.submit(b)])
            if len(pending) >= cfg.max_in_flight:
                yield from pool.result(*pending.popleft(), pending)
        while pending:
            yield from pool.result(*pending.popleft(), pending)
    finally:
        pool.close()


def check_inline(samples: Iterator[RawSample], cfg: IngestConfig, check: CheckFn = check_batch) -> Iterator[list[Good | Bad]]:
    """The checks in this process, one result list per batch (`num_workers: 0`, and each Ray Data task of the ray engine)."""
    old_limit = Image.MAX_IMAGE_PIXELS  # PIL limits are process-global: restore the caller's afterwards
    try:
        with warnings.catch_warnings():
            for b in batches(samples, cfg.batch_size):
                yield check(b, cfg)
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit


class _Pool:
    """A process pool that is rebuilt when a worker dies; the sample that killed it is quarantined, not the run."""

    def __init__(self, cfg: IngestConfig, check: CheckFn) -> None:
        self.cfg, self.check = cfg, check
        # forkserver: safe when the parent holds threads (fsspec/s3fs event loops), cheap after the first start
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(["components.data.checks"])
        self.pool = ProcessPoolExecutor(cfg.num_workers, mp_context=self.ctx)

    def submit(self, batch: list[RawSample]) -> Future:
        return self.pool.submit(self.check, batch, self.cfg)

    def restart(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = ProcessPoolExecutor(self.cfg.num_workers, mp_context=self.ctx)

    def result(self, batch: list[RawSample], future: Future, pending: deque[list]) -> list[Good | Bad]:
        try:
            return future.result()
        except BrokenProcessPool:
            self.restart()
        out: list[Good | Bad] = []
        for s in batch:  # isolate the culprit: one sample alone in the pool, so a death is its own
            try:
                out += self.submit([s]).result()
            except BrokenProcessPool:
                out.append(Bad(s.source, s.key, "decoder_crash", "a worker process died while decoding this sample"))
                self.restart()
        for item in pending:  # every queued future died with the old pool
            item[1] = self.submit(item[0])
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
