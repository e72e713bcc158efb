"""The training stage reads the audit's exclude list only when the dedup policy excludes something."""

from __future__ import annotations

import pytest

from flows.params import load_params
from flows.train_stage import exclude_keys, resume_key


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
