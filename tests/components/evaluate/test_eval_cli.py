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
