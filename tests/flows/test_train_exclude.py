"""The training stage reads the audit's exclude list only when the dedup policy excludes something."""

from __future__ import annotations

import json

import pytest

from components.train.identity import resume_key
from flows.params import load_params
from flows.train_stage import exclude_keys


def test_exclude_keys_follows_the_policy(tmp_path) -> None:
    out = tmp_path / "out"
    report = load_params("params.yaml", [f"pipeline.out_root={out}"])
    assert exclude_keys(report) == []
    keep_one = load_params("params.yaml", [f"pipeline.out_root={out}", "audit.dedup_policy=keep_one"])
    with pytest.raises(FileNotFoundError, match="stage dedup"):
        exclude_keys(keep_one)
    (out / "audit").mkdir(parents=True)
    (out / "audit" / "exclude_keys.txt").write_text("000000002\n000000001\n\n000000002\n")
    assert exclude_keys(keep_one) == ["000000001", "000000002"]


def test_exclusions_change_the_resume_key(tmp_path) -> None:
    shard = tmp_path / "a.tar"
    shard.write_bytes(b"x" * 10)
    base = resume_key([str(shard)])
    assert resume_key([str(shard)], []) == base
    assert resume_key([str(shard)], ["000000001"])["shards"] != base["shards"]


def test_a_checkpoint_of_other_data_is_never_resumed(tmp_path) -> None:
    """Shards of the same names and sizes but other ingested rows (a new data version): the checkpoint is set aside."""
    from components.train.checkpoint import CheckpointStore

    shard = tmp_path / "a.tar"
    shard.write_bytes(b"x" * 10)
    train_cfg = {"steps": 8, "lr": 0.001}
    old_key = resume_key([str(shard)], data="sha256:aaaa:1200rows", init="scratch")
    store = CheckpointStore(str(tmp_path / "train"))
    staged = tmp_path / "ckpt"
    staged.mkdir()
    (staged / "train_meta.json").write_text(json.dumps({"step": 8, "config": train_cfg, "resume_key": old_key}))
    store.upload(staged, 8)
    store.commit(8, {"metric": None})
    assert store.set_aside_if_incompatible(train_cfg, resume_key=old_key) is None  # same data: resumable
    assert store.latest_good().step == 8
    new_key = resume_key([str(shard)], data="sha256:bbbb:1500rows", init="scratch")
    assert new_key["shards"] == old_key["shards"] and new_key["data"] != old_key["data"]
    assert store.set_aside_if_incompatible(train_cfg, resume_key=new_key) is not None
    assert store.latest_good() is None  # nothing left to resume: the run trains from scratch (or the champion)


def test_training_data_version_is_the_ingested_content(tmp_path) -> None:
    from components.train.identity import training_data_version

    assert training_data_version({"data_version": "sha256:ab:3rows"}, [], []) == "sha256:ab:3rows"
    assert training_data_version({"data_version": "sha256:ab:3rows"}, [], ["k"]).startswith("sha256:ab:3rows-x")
    shard = tmp_path / "a.tar"
    shard.write_bytes(b"x")
    assert training_data_version({}, [str(shard)], []).startswith("shards:")
