"""Fixtures: the tiny aligned teacher and the ingested pairs of filter_data.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from filter_data import one_thread, train_teacher, write_pairs


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory) -> Path:
    with one_thread():
        return train_teacher(tmp_path_factory.mktemp("teacher") / "model")


@pytest.fixture(scope="session")
def ingested(tmp_path_factory):
    """(OUT root with ingest/ written by the real ingest, {ingested key: kind})."""
    import dataclasses

    from components.data.config import IngestConfig
    from components.data.ingest import ingest

    root = tmp_path_factory.mktemp("filter")
    raw = root / "raw"
    raw.mkdir()
    kinds = write_pairs(raw)
    cfg = dataclasses.replace(IngestConfig(), num_workers=0, progress=False, samples_per_shard=20)
    ingest([str(raw)], str(root / "out" / "ingest"), cfg)
    import pandas as pd

    meta = pd.read_parquet(root / "out" / "ingest" / "metadata.parquet")
    by_key = {k: kinds[sk] for k, sk in zip(meta["key"], meta["source_key"])}
    assert len(by_key) == len(kinds)
    return root / "out", by_key
