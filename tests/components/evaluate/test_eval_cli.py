"""`clip-pipeline evaluate` wires params.yaml's evaluate section to the suite."""

import json
from pathlib import Path

from flows.cli import main


def test_cli_evaluate(tmp_path, model_dir, eval_root, capsys) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(Path("params.yaml").read_text())
    out = tmp_path / "evaluate"
    sets = ["evaluate.tasks=[zeroshot_classification, zeroshot_retrieval]", "evaluate.progress=false"]
    argv = ["--params", str(params)] + [a for s in sets for a in ("--set", s)]
    rc = main([*argv, "evaluate", "--model", str(model_dir), "--eval-root", str(eval_root), "--out", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"colors/zeroshot_classification/acc1", "colors_noisy/zeroshot_classification/acc1"}
    assert "encoded 2 eval set(s), 0 from cache" in capsys.readouterr().out


def test_cli_evaluate_dataset_specs(tmp_path, model_dir, formats, capsys) -> None:
    paths = formats.write_all(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(Path("params.yaml").read_text())
    out = tmp_path / "evaluate"
    argv = ["--params", str(params), "--set", "evaluate.tasks=[zeroshot_classification]", "--set", "evaluate.progress=false"]
    specs = ["--dataset", f"w=wds:{paths['wds']}", "--dataset", f"f={paths['imagefolder']}"]
    rc = main([*argv, "evaluate", "--model", str(model_dir), "--eval-root", str(tmp_path), "--out", str(out), *specs])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["w/zeroshot_classification/acc1"] == metrics["f/zeroshot_classification/acc1"]
    assert (out / "benchmark.csv").read_text().count("\n") == 3
    assert "encoded 2 eval set(s)" in capsys.readouterr().out
