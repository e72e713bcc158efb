"""What the stages write gets the mode a plain write under the user's umask gives: never world-writable, and
owner-only under umask 077 (no fixed chmod overriding it, no mkstemp 0600 hiding outputs from the group)."""

import os
import stat

import pandas as pd
import pytest
import torch

from clip_core import create_model, save_checkpoint
from components.evaluate.cache import EmbeddingCache
from components.io import write_json, write_parquet
from components.registry import RegistryConfig, register_model


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_outputs_follow_the_umask(tmp_path, umask: int) -> None:
    write_json(tmp_path / "out" / "metrics.json", {"a": 1})
    write_parquet(tmp_path / "out" / "t.parquet", pd.DataFrame({"x": [1]}))
    ckpt = save_checkpoint(create_model("tiny"), tmp_path / "out" / "model" / "model")
    EmbeddingCache(tmp_path / "cache").save("k", torch.zeros(2, 3))
    model = tmp_path / "out" / "model"
    register_model(str(tmp_path / "registry" / "registry.json"), str(model), {"acc": 1.0}, RegistryConfig(metric="acc"),
                   archive=True)  # fmt: skip
    files = [tmp_path / "out" / "metrics.json", tmp_path / "out" / "t.parquet", ckpt, ckpt.with_suffix(".json"),
             tmp_path / "cache" / "k.safetensors", tmp_path / "registry" / "registry.json",
             tmp_path / "registry" / "models" / "v1" / "model.safetensors"]  # fmt: skip
    assert {f.name: _mode(f) for f in files} == {f.name: 0o666 & ~umask for f in files}
    dirs = [tmp_path / "out", tmp_path / "registry" / "models" / "v1"]
    assert {d.name: _mode(d) for d in dirs} == {d.name: 0o777 & ~umask for d in dirs}
    assert not list(tmp_path.rglob("*.tmp"))
