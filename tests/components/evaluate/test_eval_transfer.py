"""WiSE-FT in the evaluate stage: the initial and interpolated models are scored beside the fine-tuned one.

Known answers: alpha 1 interpolates to the fine-tuned weights exactly, so its row equals the fine-tuned
row; alpha ~0 gives the initial weights, so its row equals the initial row (0 itself means off).
"""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from components.evaluate.config import EvaluateConfig
from components.evaluate.suite import evaluate_model
from components.evaluate.transfer import top1, zero_shot_config
from flows.stages import evaluate_transfer


def _params(tmp: Path, alpha: float) -> SimpleNamespace:
    cfg = EvaluateConfig(progress=False, batch_size=16, wise_ft_alpha=alpha)
    return SimpleNamespace(evaluate=cfg, pipeline=SimpleNamespace(out_root=str(tmp / "out")),
                           data=SimpleNamespace(raw_root=str(tmp / "raw"), engine="local"))  # fmt: skip


def test_transfer_rows_have_known_answers(tmp_path: Path, model_factory, make_classification_dir) -> None:
    build, save = model_factory
    initial = save(*build(seed=0), tmp_path / "initial")
    finetuned = save(*build(seed=3), tmp_path / "out" / "train" / "model")
    (finetuned / "run_info.json").write_text(json.dumps({"training": {"init_model": str(initial)}}))
    make_classification_dir(tmp_path / "raw" / "eval", "colors", per_class=6)
    cfg = zero_shot_config(EvaluateConfig(progress=False, batch_size=16))
    assert cfg.tasks == ("zeroshot_classification", "zeroshot_retrieval")
    ft = evaluate_model(finetuned, tmp_path / "raw" / "eval", tmp_path / "ft", cfg).metrics
    init = evaluate_model(initial, tmp_path / "raw" / "eval", tmp_path / "init", cfg).metrics
    assert top1(ft) != top1(init)  # else the known answers below could not tell the rows apart

    assert evaluate_transfer(_params(tmp_path, 0.0), ft) == {}  # 0 = off: nothing is evaluated
    near = {"abs": 1e-4}  # the summary rounds to 4 places
    summary = evaluate_transfer(_params(tmp_path, 1.0), ft)  # alpha 1: exactly the fine-tuned weights
    assert summary["transfer/wise_ft/colors/acc1"] == pytest.approx(top1(ft)["colors"], **near)
    assert summary["transfer/initial/colors/acc1"] == pytest.approx(top1(init)["colors"], **near)
    assert summary["transfer/finetuned/colors/acc1"] == pytest.approx(top1(ft)["colors"], **near)
    doc = json.loads((tmp_path / "out" / "evaluate" / "transfer" / "transfer.json").read_text())
    assert [r["model"] for r in doc["rows"]] == ["initial", "fine-tuned", "WiSE-FT a=1"]
    summary = evaluate_transfer(_params(tmp_path, 1e-12), ft)  # alpha ~0: the initial weights
    assert summary["transfer/wise_ft/colors/acc1"] == pytest.approx(top1(init)["colors"], **near)
    # a run trained from scratch has no initial model to compare
    (finetuned / "run_info.json").write_text(json.dumps({"training": {"init_model": None}}))
    assert evaluate_transfer(_params(tmp_path, 0.5), ft) == {}


def test_transfer_needs_zero_shot_classification() -> None:
    with pytest.raises(ValueError, match="zeroshot_classification"):
        zero_shot_config(EvaluateConfig(tasks=("linear_probe",)))
    with pytest.raises(ValueError, match="wise_ft_alpha"):
        EvaluateConfig(wise_ft_alpha=1.5)
