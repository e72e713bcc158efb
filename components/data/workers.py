"""Ordered, bounded map of the per-sample checks over worker processes that survives a worker dying mid-sample."""

from __future__ import annotations

import multiprocessing as mp
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext

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
    pending: deque[_Task] = deque()
    try:
        for b in batches(samples, cfg.batch_size):
            pending.append(pool.submit(b))
            if len(pending) >= cfg.max_in_flight:
                yield from pool.result(pending.popleft())
        while pending:
            yield from pool.result(pending.popleft())
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


@dataclass(eq=False)
class _Task:
    """A batch to check; if its worker died, `parts` re-runs each sample alone so a death names its sample."""

    samples: list[RawSample]
    alone: bool = False  # one sample of a batch that killed its worker
    out: list[Good | Bad] | None = None
    parts: list[_Task] = field(default_factory=list)

    def done(self) -> bool:
        return self.out is not None or (bool(self.parts) and all(p.out is not None for p in self.parts))

    def results(self) -> list[Good | Bad]:
        return self.out if self.out is not None else [r for p in self.parts for r in p.out or ()]


def _serve(conn: Connection, check: CheckFn, cfg: IngestConfig) -> None:
    """A worker: one batch in, its results (or the exception it raised) out; EOF from the parent means stop."""
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        try:
            reply = (True, check(batch, cfg), "")
        except Exception as e:
            reply = (False, e, traceback.format_exc())
        try:
            conn.send(reply)
        except (BrokenPipeError, ConnectionResetError):
            return  # the parent is gone or gave up on this batch
        except Exception:  # the exception itself does not pickle: send its text
            conn.send((False, RuntimeError(reply[2]), reply[2]))


class _Worker:
    """One process with its own pipe: its death shows on its sentinel and blames exactly the task it held."""

    def __init__(self, ctx: BaseContext, check: CheckFn, cfg: IngestConfig) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, check, cfg), daemon=True)
        self.proc.start()
        child.close()  # the worker holds the only other end, so its death is EOF here
        self.task: _Task | None = None


class _Pool:
    """Worker processes fed one task each; a dead worker is replaced and its batch re-run one sample at a time.

    Not ProcessPoolExecutor: there one death breaks the whole pool, and (CPython 3.11) a worker that `submit` starts
    while the manager thread tears the broken pool down is never terminated, so the teardown, and `shutdown`, wait
    for it forever. Here the parent has no helper threads and each worker its own pipe: a death blames one task.
    """

    def __init__(self, cfg: IngestConfig, check: CheckFn) -> None:
        self.cfg, self.check = cfg, check
        # forkserver: safe when the parent holds threads (fsspec/s3fs event loops), cheap after the first start
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(["components.data.checks"])
        self.workers: list[_Worker] = []
        self.queue: deque[_Task] = deque()  # tasks waiting for an idle worker

    def submit(self, batch: list[RawSample]) -> _Task:
        task = _Task(batch)
        self.queue.append(task)
        self._wait(timeout=0)  # collect finished replies so idle workers get this task now
        return task

    def result(self, task: _Task) -> list[Good | Bad]:
        self._wait(timeout=0)  # the same for queued tasks while the caller handles this one's results
        while not task.done():
            self._wait()
        return task.results()

    def _dispatch(self) -> None:
        for w in [w for w in self.workers if w.task is None and w.proc.exitcode is not None]:
            self._retire(w)  # died while idle: nothing to blame
        while self.queue and len(self.workers) < self.cfg.num_workers:
            self.workers.append(_Worker(self.ctx, self.check, self.cfg))
        for w in self.workers:
            if w.task is None and self.queue:
                w.task = self.queue.popleft()
                with suppress(OSError):  # it died: _wait sees that and re-runs the task
                    w.conn.send(w.task.samples)

    def _wait(self, timeout: float | None = None) -> None:
        """Take in replies and deaths (blocking until one comes unless `timeout`), then hand out queued tasks.

        No timeout by default: a slow sample is never taken for a crash, only a worker's exit is."""
        self._dispatch()
        busy = [w for w in self.workers if w.task is not None]
        assert busy or timeout is not None, "waiting on a task that no worker holds"  # wait([]) would block forever
        ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout))
        for w in busy:
            reply = _recv(w.conn) if w.conn in ready else None
            if reply is not None:
                task, w.task = w.task, None
                ok, value, tb = reply
                if not ok:
                    value.add_note(f"raised in an ingest worker process:\n{tb}")
                    raise value
                task.out = value
            if (reply is None and w.conn in ready) or w.proc.sentinel in ready:
                self._died(w)
        self._dispatch()

    def _died(self, w: _Worker) -> None:
        task = w.task
        self._retire(w)
        if task is None:
            return
        if task.alone:
            detail = "a worker process died while decoding this sample"
            task.out = [Bad(s.source, s.key, "decoder_crash", detail) for s in task.samples]
        else:  # to the front: the caller is most likely waiting on this batch
            task.parts = [_Task([s], alone=True) for s in task.samples]
            self.queue.extendleft(reversed(task.parts))

    def _retire(self, w: _Worker) -> None:
        self.workers.remove(w)
        w.conn.close()
        w.proc.join()

    def close(self) -> None:
        for w in self.workers:
            w.conn.close()  # an idle worker reads EOF and exits
            if w.task is not None:
                w.proc.kill()  # abandoned mid-batch (an error, or the consumer stopped early)
        for w in self.workers:
            w.proc.join(10)
            if w.proc.exitcode is None:
                w.proc.kill()
                w.proc.join()
        self.workers.clear()


def _recv(conn: Connection) -> tuple | None:
    """A worker's reply, or None if it died before sending all of it."""
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None
