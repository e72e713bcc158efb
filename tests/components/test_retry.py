"""Storage errors: transient failures are retried with back-off then fail naming the URL; a full disk fails at once,
clearly, and never leaves a truncated output. Injected through a fake fsspec filesystem (`flaky://`)."""

import errno
import uuid

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

from components.data.config import IngestConfig, SynthConfig
from components.data.ingest import ingest
from components.data.synth import build_synth
from components.retry import RetryPolicy, StorageError, StorageFullError, retry_io
from components.train.checkpoint import CheckpointStore
from components.train.metrics import MetricsLog

pytestmark = pytest.mark.faults
FAST = RetryPolicy(attempts=4, base_s=0.001, max_s=0.004)


class FlakyFS(MemoryFileSystem):
    """In-memory storage whose methods fail the next `fail[name]` calls; writes fail with ENOSPC past `capacity` bytes."""

    protocol = "flaky"
    fail: dict[str, int] = {}  # noqa: RUF012
    error: type[BaseException] | OSError = TimeoutError
    capacity: int | None = None
    calls: dict[str, int] = {}  # noqa: RUF012

    def _maybe_fail(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.fail.get(name, 0) > 0:
            self.fail[name] -= 1
            raise self.error(f"injected {name} failure") if isinstance(self.error, type) else self.error

    def put_file(self, lpath, rpath, **kw):
        self._maybe_fail("put_file")
        return super().put_file(lpath, rpath, **kw)

    def get_file(self, rpath, lpath, **kw):
        self._maybe_fail("get_file")
        return super().get_file(rpath, lpath, **kw)

    def pipe_file(self, path, value, **kw):
        self._maybe_fail("pipe_file")
        return super().pipe_file(path, value, **kw)

    def cat_file(self, path, start=None, end=None, **kw):
        self._maybe_fail("cat_file")
        return super().cat_file(path, start, end, **kw)

    def _open(self, path, mode="rb", **kw):
        if "w" in mode and FlakyFS.capacity is not None:
            return FullFile(self, self._strip_protocol(path))
        return super()._open(path, mode, **kw)


class FullFile(MemoryFile):
    def write(self, data):
        used = sum(len(f.getvalue()) for f in MemoryFileSystem.store.values()) + self.tell()
        if used + len(data) > FlakyFS.capacity:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


@pytest.fixture(autouse=True)
def flaky(monkeypatch):
    fsspec.register_implementation("flaky", FlakyFS, clobber=True)
    monkeypatch.setattr(FlakyFS, "fail", {})
    monkeypatch.setattr(FlakyFS, "calls", {})
    monkeypatch.setattr(FlakyFS, "error", TimeoutError)
    monkeypatch.setattr(FlakyFS, "capacity", None)
    monkeypatch.setenv("CLIP_IO_BACKOFF_S", "0.001")  # for callers on the default policy: no real waiting
    return FlakyFS


def test_transient_errors_back_off_then_succeed() -> None:
    calls, sleeps = [], []

    def fn():
        calls.append(1)
        if len(calls) < 3:
            raise OSError(errno.EIO, "I/O error") if len(calls) == 1 else TimeoutError("read timed out")
        return "ok"

    policy = RetryPolicy(attempts=5, base_s=0.5, max_s=8)
    assert retry_io(fn, "read", "s3://bucket/x", policy, sleep=sleeps.append) == "ok"
    assert len(calls) == 3 and sleeps == [0.5, 1.0]  # exponential back-off, nothing slept for real
    assert policy.delays() == [0.5, 1.0, 2.0, 4.0]


def test_persistent_errors_fail_naming_url_and_attempts() -> None:
    sleeps = []
    with pytest.raises(StorageError, match=r"upload s3://bucket/ckpt/a.pt failed after 4 attempt\(s\): TimeoutError: slow"):
        retry_io(lambda: (_ for _ in ()).throw(TimeoutError("slow")), "upload", "s3://bucket/ckpt/a.pt", FAST, sleeps.append)
    assert sleeps == [0.001, 0.002, 0.004]


@pytest.mark.parametrize("exc", [FileNotFoundError("gone"), PermissionError("denied")])
def test_permanent_errors_are_not_retried(exc) -> None:
    calls = []
    with pytest.raises(type(exc)):
        retry_io(lambda: calls.append(1) or (_ for _ in ()).throw(exc), "read", "s3://b/x", FAST, lambda s: None)
    assert len(calls) == 1


def test_full_disk_fails_at_once_and_clearly() -> None:
    calls = []
    with pytest.raises(StorageFullError, match=r"write /data/out/x.json: no space left.*free space or point the output"):
        retry_io(lambda: calls.append(1) or (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")), "write",
                 "/data/out/x.json", FAST, lambda s: None)  # fmt: skip
    assert len(calls) == 1


def test_checkpoint_store_rides_out_transient_storage_errors(tmp_path, flaky) -> None:
    root = f"flaky://ckpt-{uuid.uuid4().hex[:8]}"
    store = CheckpointStore(root, retry=FAST)
    local = tmp_path / "local"
    local.mkdir()
    (local / "train_state.pt").write_bytes(b"weights" * 100)
    flaky.fail = {"put_file": 2, "pipe_file": 1, "cat_file": 3, "get_file": 2}
    store.upload(local, 10)
    info = store.commit(10, {"metric": None, "higher_is_better": False})
    assert store.latest_good().step == 10
    out = store.download(info, tmp_path / "restored")
    assert (out / "train_state.pt").read_bytes() == b"weights" * 100
    assert all(v == 0 for v in flaky.fail.values()), flaky.fail  # every injected failure was hit and survived

    flaky.fail = {"get_file": 99}  # storage down for good: a clear error naming the file's URL
    with pytest.raises(StorageError, match=r"download checkpoint file flaky://.*ckpt-.*/checkpoints/step-00000010/"
                                           r"train_state.pt failed after 4 attempt"):  # fmt: skip
        store.download(info, tmp_path / "again")


def test_metrics_log_retries_with_default_policy(tmp_path, flaky) -> None:
    flaky.fail = {"pipe_file": 2}
    mlog = MetricsLog(f"flaky://metrics-{uuid.uuid4().hex[:8]}", rank=0, total_steps=2, start_step=0)
    mlog.log({"step": 1, "loss": 1.0})
    mlog.close()
    assert flaky.calls["pipe_file"] == 3


def test_ingest_onto_full_storage_fails_clearly_and_publishes_nothing(tmp_path, flaky) -> None:
    raw = tmp_path / "raw"
    build_synth(str(raw), SynthConfig(n_train=40, samples_per_shard=20, n_eval_per_class=1, n_compositional_per_pair=1,
                                      n_retrieval=2, n_planted_duplicates=1, num_workers=0))  # fmt: skip
    out = f"flaky://full-{uuid.uuid4().hex[:8]}/ingest"
    flaky.capacity = sum(len(f.getvalue()) for f in MemoryFileSystem.store.values()) + 30_000  # room for ~1/4 of it
    with pytest.raises(StorageFullError, match=r"write shard flaky://.*shards/shard-00000\d.tar: no space left"):
        ingest([str(raw / "train")], out, IngestConfig(num_workers=0, samples_per_shard=20, progress=False))
    fs, path = fsspec.core.url_to_fs(out)
    assert not fs.exists(path)  # no truncated shard or table published as the stage's output


def test_atomic_write_on_a_full_disk_names_the_file(tmp_path, monkeypatch) -> None:
    """components.io: ENOSPC while writing an output raises StorageFullError naming the output, and leaves no file."""
    import pandas as pd

    from components import io

    def no_space(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", no_space)
    target = tmp_path / "audit" / "dedup_pairs.parquet"
    with pytest.raises(StorageFullError, match=r"write .*audit/dedup_pairs\.parquet: no space left"):
        io.write_parquet(target, pd.DataFrame({"a": [1]}))
    assert list(target.parent.iterdir()) == []  # neither the output nor its temp file
