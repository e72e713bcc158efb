import json
from pathlib import Path

from components.train.metrics import MetricsLog


def test_metrics_file_and_resume_truncation(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CLIP_TRAIN_NO_PROGRESS", "1")
    m = MetricsLog(str(tmp_path), rank=0, total_steps=40, start_step=0, tensorboard=True)
    for step in (10, 20, 30):
        m.log({"step": step, "loss": 1.0 / step, "lr": 0.1})
    m.close()
    # a restart from the step-20 checkpoint drops the step-30 line it is about to redo
    m = MetricsLog(str(tmp_path), rank=0, total_steps=40, start_step=20)
    m.log({"step": 30, "loss": 0.5, "lr": 0.1})
    m.close()
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["loss"]) for r in rows] == [(10, 0.1), (20, 0.05), (30, 0.5)]
    assert any((tmp_path / "tensorboard").iterdir())


def test_other_ranks_write_nothing(tmp_path: Path) -> None:
    m = MetricsLog(str(tmp_path), rank=1, total_steps=10, start_step=0)
    m.log({"step": 1, "loss": 1.0})
    assert not (tmp_path / "metrics.jsonl").exists()
