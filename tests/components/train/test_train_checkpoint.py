import logging
import uuid
from pathlib import Path

import pytest

from components.train.checkpoint import CheckpointStore, CorruptCheckpointError


def _stage(store: CheckpointStore, tmp: Path, step: int, payload: str, metric: float | None = None) -> None:
    local = tmp / f"local-{step}"
    (local / "ds").mkdir(parents=True)
    (local / "train_state.pt").write_text(payload)
    (local / "ds" / "zero_pp_rank_0.pt").write_text(payload * 2)
    store.upload(local, step)
    store.commit(step, {"metric": metric, "higher_is_better": False})


@pytest.mark.parametrize("scheme", ["local", "memory"])
def test_round_trip_on_any_fsspec_url(tmp_path: Path, scheme: str) -> None:
    root = str(tmp_path / "run") if scheme == "local" else f"memory://ckpt-{uuid.uuid4().hex}"
    store = CheckpointStore(root)
    assert store.latest_good() is None
    _stage(store, tmp_path, 10, "ten")
    _stage(store, tmp_path, 20, "twenty")
    info = store.latest_good()
    assert info.step == 20 and set(info.meta["files"]) == {"train_state.pt", "ds/zero_pp_rank_0.pt"}
    out = store.download(info, tmp_path / "restored")
    assert (out / "train_state.pt").read_text() == "twenty"
    assert (out / "ds" / "zero_pp_rank_0.pt").read_text() == "twentytwenty"


def test_corrupt_checkpoint_is_reported_and_previous_one_used(tmp_path: Path, caplog) -> None:
    store = CheckpointStore(str(tmp_path / "run"))
    _stage(store, tmp_path, 10, "ten")
    _stage(store, tmp_path, 20, "twenty")
    (tmp_path / "run" / "checkpoints" / "step-00000020" / "train_state.pt").write_text("bit rot")
    with pytest.raises(CorruptCheckpointError, match=r"step-00000020.*train_state.pt does not match"):
        store.verify(store.list()[-1])
    with caplog.at_level(logging.ERROR):
        assert store.latest_good().step == 10
    assert "skipping corrupt checkpoint" in caplog.text


def test_uncommitted_staging_is_not_a_checkpoint(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path / "run"))
    _stage(store, tmp_path, 10, "ten")
    local = tmp_path / "partial"
    local.mkdir()
    (local / "train_state.pt").write_text("half")
    store.upload(local, 20)  # crashed before commit: staging only
    assert [c.step for c in store.list()] == [10]
    assert store.latest_good().step == 10


def test_prune_keeps_last_k_plus_best(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path / "run"))
    for step, loss in [(10, 3.0), (20, 1.0), (30, 2.0), (40, 2.5), (50, 2.2)]:
        _stage(store, tmp_path, step, str(step), metric=loss)
    removed = store.prune(keep_last=2)
    assert sorted(removed) == [10, 30]
    assert [c.step for c in store.list()] == [20, 40, 50]  # best (lowest loss) 20 + newest two


def test_checkpoints_of_another_config_are_set_aside(tmp_path: Path) -> None:
    import json

    store = CheckpointStore(str(tmp_path / "run"))
    local = tmp_path / "local"
    local.mkdir()
    (local / "train_meta.json").write_text(json.dumps({"step": 10, "config": {"lr": 0.001, "steps": 100, "log_every": 10}}))
    store.upload(local, 10)
    store.commit(10, {"metric": None, "higher_is_better": False})
    # only a resume-safe key changed: keep the checkpoints and resume from them
    assert store.set_aside_if_incompatible({"lr": 0.001, "steps": 100, "log_every": 5}) is None
    assert store.latest_good().step == 10
    # the learning rate changed: the old run must not be resumed
    moved = store.set_aside_if_incompatible({"lr": 0.002, "steps": 100, "log_every": 10})
    assert moved is not None and store.latest_good() is None
    assert (Path(moved) / "step-00000010" / "train_meta.json").exists()
