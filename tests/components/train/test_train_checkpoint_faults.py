"""Faults during checkpoint writes: a process SIGKILLed mid-upload or mid-commit never leaves a checkpoint that
lists as valid, the next run resumes from the previous good one; a corrupted checkpoint is refused by name."""

import json
import logging
from pathlib import Path

import pytest

from components.train.checkpoint import CheckpointStore, CorruptCheckpointError
from components.train.config import TrainConfig
from components.train.loop import train_loop_per_worker
from tests.kill import run_killed

pytestmark = pytest.mark.faults

# The child stages step 20 of a store that already holds a committed step 10, then SIGKILLs itself at `point`.
CHILD = """
import posixpath
from pathlib import Path
from components.train.checkpoint import CheckpointStore
POINT, ROOT = {point!r}, {root!r}
store = CheckpointStore(ROOT)
fs = store.fs
put_file, pipe_file, mv = fs.put_file, fs.pipe_file, fs.mv

def half_put(src, dest, **kw):  # the big file: half its bytes reach the storage, then the process dies
    data = Path(src).read_bytes()
    if src.endswith("train_state.pt"):
        with open(dest, "wb") as f:
            f.write(data[: len(data) // 2]); f.flush()
        die()
    return put_file(src, dest, **kw)

def half_pipe(path, value, **kw):  # the manifest: half written
    with open(path, "wb") as f:
        f.write(value[: len(value) // 2]); f.flush()
    die()

def mv_then_die(src, dest, **kw):
    if POINT == "after_move" and src.endswith(".tmp"):
        mv(src, dest, **kw); die()
    if POINT == "before_manifest_rename" and dest.endswith("manifest.json"):
        die()
    return mv(src, dest, **kw)

if POINT == "upload":
    fs.put_file = half_put
elif POINT == "manifest_write":
    fs.pipe_file = half_pipe
else:
    fs.mv = mv_then_die
local = Path({local!r})
store.upload(local, 20)
store.commit(20, {{"metric": None, "higher_is_better": False}})
raise SystemExit("not killed")
"""


def _stage(store: CheckpointStore, tmp: Path, step: int, payload: bytes) -> Path:
    local = tmp / f"local-{step}"
    (local / "ds").mkdir(parents=True, exist_ok=True)
    (local / "train_state.pt").write_bytes(payload)
    (local / "ds" / "zero_pp_rank_0.pt").write_bytes(payload[:100])
    return local


@pytest.mark.parametrize("point", ["upload", "after_move", "manifest_write", "before_manifest_rename"])
def test_kill_during_checkpoint_write_falls_back_then_recommits(tmp_path: Path, point: str) -> None:
    root = str(tmp_path / "run")
    store = CheckpointStore(root)
    store.upload(_stage(store, tmp_path, 10, b"ten" * 1000), 10)
    store.commit(10, {"metric": None, "higher_is_better": False})
    local = _stage(store, tmp_path, 20, bytes(range(256)) * 4096)  # 1 MiB
    run_killed(CHILD.format(point=point, root=root, local=str(local)), tmp_path)

    ckpts = tmp_path / "run" / "checkpoints"
    left = sorted(p.name for p in ckpts.iterdir())
    assert left != ["step-00000010"], "the kill left nothing behind: the fault was not injected"
    assert [c.step for c in store.list()] == [10], left
    assert store.latest_good().step == 10
    # the next run reaches step 20 again: it commits over the debris and prunes stale staging
    store.upload(local, 20)
    info = store.commit(20, {"metric": None, "higher_is_better": False})
    store.verify(info)
    assert store.latest_good().step == 20
    store.prune(keep_last=2)
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-00000010", "step-00000020"]
    assert set(json.loads((ckpts / "step-00000020" / "manifest.json").read_text())["files"]) == {
        "train_state.pt", "ds/zero_pp_rank_0.pt"
    }  # fmt: skip


def test_half_manifest_from_an_older_writer_is_not_a_checkpoint(tmp_path: Path, caplog) -> None:
    """Manifests used to be written in place; one cut short must not crash listing (it did: JSONDecodeError)."""
    store = CheckpointStore(str(tmp_path / "run"))
    for step in (10, 20):
        store.upload(_stage(store, tmp_path, step, b"x" * 100), step)
        store.commit(step, {"metric": None, "higher_is_better": False})
    manifest = tmp_path / "run" / "checkpoints" / "step-00000020" / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:40])
    with caplog.at_level(logging.ERROR):
        assert [c.step for c in store.list()] == [10]
    assert "unreadable manifest" in caplog.text and "step-00000020" in caplog.text


def test_missing_file_in_committed_checkpoint_is_named(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path / "run"))
    for step in (10, 20):
        store.upload(_stage(store, tmp_path, step, b"y" * 100), step)
        store.commit(step, {"metric": None, "higher_is_better": False})
    (tmp_path / "run" / "checkpoints" / "step-00000020" / "ds" / "zero_pp_rank_0.pt").unlink()
    with pytest.raises(CorruptCheckpointError, match=r"step-00000020: ds/zero_pp_rank_0.pt listed in the manifest is missing"):
        store.verify(store.list()[-1])
    assert store.latest_good().step == 10


def _cfg() -> TrainConfig:
    return TrainConfig(workers=1, steps=4, batch_size=8, warmup=1, ckpt_every=2, log_every=1, keep_last=3,
                       strategy="ddp", num_data_workers=0, shuffle_buffer=16, seed=5)  # fmt: skip


def _metrics(storage: Path) -> list[dict]:
    return [json.loads(x) for x in (storage / "metrics.jsonl").read_text().splitlines()]


def test_training_killed_mid_commit_resumes_from_previous_checkpoint(fn_config, tmp_path: Path) -> None:
    """The real loop, SIGKILLed while writing the step-4 manifest: the rerun resumes at step 2 and finishes."""
    storage = tmp_path / "train"
    config = fn_config(_cfg(), str(storage))
    (tmp_path / "config.json").write_text(json.dumps(config))
    run_killed(
        """
        import json
        from components.train.checkpoint import CheckpointStore
        from components.train.loop import train_loop_per_worker
        commit = CheckpointStore.commit
        def commit_or_die(self, step, meta):
            if step == 4:  # staged and moved; the manifest is half written when the process dies
                self.fs.pipe_file = lambda path, value, **kw: (open(path, "wb").write(value[:50]), die())
            return commit(self, step, meta)
        CheckpointStore.commit = commit_or_die
        train_loop_per_worker(json.load(open("config.json")))
        """,
        tmp_path,
    )
    store = CheckpointStore(str(storage))
    assert (storage / "checkpoints" / "step-00000004").exists()  # the debris is there ...
    assert store.latest_good().step == 2  # ... and is not taken for a checkpoint
    out = train_loop_per_worker(config)
    assert out["step"] == 4
    rows = _metrics(storage)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # history kept up to the checkpoint, then continued
    assert [r.get("resumed_from") for r in rows[2:]] == [2, 2]
    store.verify(store.latest_good())
    assert store.latest_good().step == 4


def test_training_with_corrupted_latest_checkpoint_resumes_from_previous(fn_config, tmp_path: Path, caplog) -> None:
    storage = tmp_path / "train"
    config = fn_config(_cfg(), str(storage))
    train_loop_per_worker(config)
    state = storage / "checkpoints" / "step-00000004" / "train_state.pt"
    raw = bytearray(state.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one flipped bit in what resume loads
    state.write_bytes(bytes(raw))
    with caplog.at_level(logging.ERROR):
        out = train_loop_per_worker(config)
    assert "step-00000004: train_state.pt does not match its sha256" in caplog.text
    assert out["step"] == 4
    assert [r.get("resumed_from") for r in _metrics(storage)[2:]] == [2, 2]
    CheckpointStore(str(storage)).verify(CheckpointStore(str(storage)).latest_good())
