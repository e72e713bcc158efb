"""The suite end to end on a tiny random model: every file written, the cache reused, metrics consistent."""

import json

import pytest

from components.evaluate.config import EvaluateConfig
from components.evaluate.dataset import discover_eval_datasets, stratified_split
from components.evaluate.suite import evaluate_model, quick_zeroshot_accuracy

FAST = dict(
    progress=False, probe_c_steps=7, probe_c_init_steps=4, probe_c_min=1e-3, probe_c_max=1e3, fewshot_ks=(1, 2), batch_size=16
)


def test_evaluate_model_writes_everything_and_reuses_the_cache(tmp_path, model_dir, eval_root, tiny_model) -> None:
    cfg = EvaluateConfig(**FAST)
    out = tmp_path / "out"
    res = evaluate_model(model_dir, eval_root, out, cfg)
    assert (res.encoded, res.cached) == (2, 0)
    tasks = {(r["dataset"], r["task"]) for r in res.records}
    assert tasks == {
        ("colors", "zeroshot_classification"),
        ("colors", "zeroshot_retrieval"),
        ("colors", "linear_probe"),
        ("colors", "fewshot"),
        ("colors", "robustness"),
        ("colors_noisy", "zeroshot_classification"),
    }
    for ds, task in tasks:
        rec = json.loads((out / "results" / f"{ds}__{task}.json").read_text())
        assert rec["dataset"] == ds and rec["task"] == task and rec["model"] == "model" and rec["metrics"]
    for name in ("results.json", "results.md", "results.html", "metrics.json", "run.json"):
        assert (out / name).stat().st_size > 0
    assert {p.name for p in (out / "plots").iterdir()} == {
        "colors__confusion.png", "colors_noisy__confusion.png", "colors__fewshot.png", "colors__robustness.png"
    }  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["colors/zeroshot_classification/acc1"] <= 1.0
    assert "colors/zeroshot_retrieval/image_retrieval_recall@5" in metrics
    assert "colors/robustness/colors_noisy/effective_robustness" in metrics
    # per-sample zero-shot predictions (read by the overlap audit) agree with the reported accuracy
    import pandas as pd

    pred = pd.read_csv(out / "results" / "colors" / "zeroshot_predictions.csv")
    assert list(pred.columns) == ["index", "key", "image", "label", "prediction", "correct"]
    assert pred["correct"].mean() == pytest.approx(metrics["colors/zeroshot_classification/acc1"])

    again = evaluate_model(model_dir, eval_root, tmp_path / "out2", EvaluateConfig(**FAST, cache_dir=str(out / "cache")))
    assert (again.encoded, again.cached) == (0, 2)
    assert again.metrics == res.metrics
    cache_counts = json.loads((tmp_path / "out2" / "run.json").read_text())["cache"]
    assert cache_counts == {"encoded": 0, "cached": 2, "text_encoded": 0, "text_cached": 3}  # prompts x2, captions

    model, tokenizer = tiny_model
    quick = quick_zeroshot_accuracy(model, tokenizer, eval_root / "colors")
    assert quick["acc1"] == pytest.approx(metrics["colors/zeroshot_classification/acc1"])


def test_torch_probe_backend_gives_the_same_suite_answers(tmp_path, model_dir, eval_root) -> None:
    kw = dict(
        FAST,
        tasks=("linear_probe",),
        datasets=("colors",),
        probe_c_steps=5,
        probe_c_init_steps=3,
        probe_c_min=1e-2,
        probe_c_max=1e2,
    )
    sk = evaluate_model(model_dir, eval_root, tmp_path / "a", EvaluateConfig(**kw))
    th = evaluate_model(model_dir, eval_root, tmp_path / "b", EvaluateConfig(**kw, probe_backend="torch"))
    assert sk.metrics["colors/linear_probe/lp_acc1"] == th.metrics["colors/linear_probe/lp_acc1"]
    assert sk.metrics["colors/linear_probe/C"] == th.metrics["colors/linear_probe/C"]


def test_discovery_and_splits(eval_root) -> None:
    ds = discover_eval_datasets(eval_root)
    assert [d.name for d in ds] == ["colors", "colors_noisy"]
    assert ds[1].shift_of == "colors" and ds[0].has_retrieval and not ds[1].has_retrieval
    with pytest.raises(ValueError, match="not found"):
        discover_eval_datasets(eval_root, ("nope",))
    a, b = stratified_split(ds[0].labels, 0.5, seed=0)
    a2, _ = stratified_split(ds[0].labels, 0.5, seed=0)
    assert (a == a2).all() and len(set(a) & set(b)) == 0 and len(a) + len(b) == len(ds[0])
    assert all((ds[0].labels[a] == c).sum() == 4 for c in range(6))


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="unknown"):
        EvaluateConfig(tasks=("zeroshot", "linear_probe"))
    with pytest.raises(ValueError, match="multiple"):
        EvaluateConfig(probe_c_steps=10, probe_c_init_steps=5)
    with pytest.raises(ValueError, match="probe_train_fraction"):
        EvaluateConfig(probe_train_fraction=1.0)
