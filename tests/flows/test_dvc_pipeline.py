"""`dvc repro` runs the stages offline; a no-op repro does no work; a train param re-runs train onwards only."""

import json
from pathlib import Path

import pytest
import yaml

from tests.flows.tiny_project import make_tiny_project, run

pytestmark = pytest.mark.smoke

# DVC's wiring is under test, not what the stages compute: every stage runs, on its cheapest settings (the
# evaluation's one task whose metric the registry reads; pHash-only dedup/overlap; no bias probe, fewer resamples).
CHEAP = {
    "evaluate.tasks": ["zeroshot_classification"],
    "audit.use_embeddings": False,
    "audit.verify": False,
    "bias.linear_probe": False,
    "bias.bootstrap": 100,
}


def test_dvc_repro_noop_and_partial(tmp_path: Path) -> None:
    proj = make_tiny_project(tmp_path / "proj", **CHEAP)
    run(["clip-pipeline", "data", "synth"], proj)
    first = run(["dvc", "repro"], proj, timeout=1500).stdout
    for stage in ("ingest", "validate", "train", "evaluate", "bias", "report", "register"):
        assert f"Running stage '{stage}'" in first, first[-3000:]
    assert (proj / "out" / "report" / "report.html").exists()
    metrics = json.loads((proj / "out" / "evaluate" / "metrics.json").read_text())
    assert "shape/zeroshot_classification/acc1" in metrics
    assert "shape/zeroshot_classification/acc1" in run(["dvc", "metrics", "show"], proj).stdout

    again = run(["dvc", "repro"], proj).stdout
    assert "Running stage" not in again  # nothing changed: no work

    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["train"]["lr"] = 0.002
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    partial = run(["dvc", "repro"], proj, timeout=1500).stdout
    assert "Running stage 'train'" in partial and "Running stage 'evaluate'" in partial
    assert "Running stage 'ingest'" not in partial and "Running stage 'validate'" not in partial

    plots = run(["dvc", "plots", "show", "--json"], proj).stdout
    assert "out/train/metrics.csv" in plots

    # checkpoints' exported model and the report are DVC outputs: they push to a local remote offline
    run(["dvc", "remote", "add", "-d", "local", str(tmp_path / "remote")], proj)
    run(["dvc", "push"], proj)
    assert any((tmp_path / "remote").rglob("*"))
