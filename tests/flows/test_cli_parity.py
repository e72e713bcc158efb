"""`clip-pipeline train` / `data ingest` write exactly what `clip-pipeline stage train` / `stage ingest` write."""

from __future__ import annotations

import json
import posixpath
import sys
from pathlib import Path

from flows.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "components" / "train"))
from shapes_data import write_shape_shards


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _fake_launch(train_fn, fn_config, *, storage_path, **kw) -> None:
    """Ray stands in: the files a training run leaves (model directory, metrics log), in seconds."""
    model = Path(storage_path) / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "model.safetensors").write_bytes(b"weights")
    records = [
        {"step": 4, "loss": 2.5, "lr": 0.1, "logit_scale": 14.3},
        {"step": 8, "loss": 2.25, "lr": 0.05, "logit_scale": 14.3},
    ]
    (Path(storage_path) / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_stage_subcommands_and_stage_runner_write_the_same_files(tmp_path, monkeypatch, capsys) -> None:
    import infra.ray_launcher

    monkeypatch.setattr(infra.ray_launcher, "launch", _fake_launch)
    raw = tmp_path / "raw"
    write_shape_shards(raw / "train", n_shards=1, per_shard=24)  # the embedded dataset's place, in miniature
    base = [f"data.raw_root={raw}", "data.ingest.num_workers=0", "data.ingest.progress=false", "train.model=tiny"]
    sets = [a for o in base for a in ("--set", o)]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([*sets, "--set", f"pipeline.out_root={a}", "data", "ingest"]) == 0
    assert main([*sets, "--set", f"pipeline.out_root={b}", "stage", "ingest"]) == 0
    assert "run_info.json" in _files(a / "ingest") and _files(a / "ingest") == _files(b / "ingest")
    assert main([*sets, "--set", f"pipeline.out_root={a}", "train"]) == 0
    assert main([*sets, "--set", f"pipeline.out_root={b}", "stage", "train"]) == 0
    assert {"metrics.csv", "model/run_info.json", "run.json"} <= _files(a / "train") == _files(b / "train")
    out = capsys.readouterr().out
    assert out.count("loss: 2.25") == 2 and out.count(f"model: {posixpath.join(str(a), 'train', 'model')}") == 1
