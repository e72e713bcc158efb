"""Fixtures for the training tests: coloured-shape shards, a colour eval dir, a tokenizer trained on them."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from shapes_data import COLOURS, SHAPES, write_colour_eval, write_shape_shards


@pytest.fixture(scope="session")
def shape_shards(tmp_path_factory) -> list[str]:
    return write_shape_shards(tmp_path_factory.mktemp("shards"), n_shards=4, per_shard=64)


@pytest.fixture(scope="session")
def colour_eval(tmp_path_factory) -> Path:
    return write_colour_eval(tmp_path_factory.mktemp("eval"), n=80)


@pytest.fixture(scope="session")
def tokenizer():
    import clip_core

    captions = [f"a {c} {s}" for c in COLOURS for s in SHAPES]
    return clip_core.Tokenizer.train(captions * 4, vocab_size=1024, context_length=32)


@pytest.fixture()
def fn_config(shape_shards, tokenizer, tmp_path):
    """Build the worker config dict for a TrainConfig (DeepSpeed config from infra, as the flow does)."""
    from components.train.config import TrainConfig
    from infra.deepspeed_config import deepspeed_config

    def make(cfg: TrainConfig, storage: str | None = None, **extra) -> dict:
        ds = deepspeed_config(cfg.zero_stage, cfg.precision, cfg.batch_size, cfg.accum_steps, cfg.grad_clip)
        return {
            "train": dataclasses.asdict(cfg),
            "shards": shape_shards,
            "storage_path": storage or str(tmp_path / "train"),
            "tokenizer_json": tokenizer.backend.to_str(),
            "tokenizer_context_length": 32,
            "ds_config": ds if cfg.strategy == "deepspeed" else None,
            **extra,
        }

    return make
