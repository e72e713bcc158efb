"""The console's pieces: headlines per stage, warnings counted instead of printed, the training bar fed by rank 0."""

import io
import json
import time
import warnings

from rich.console import Console

from flows import console


def test_headlines_say_the_one_result() -> None:
    ingest = {"input": 1000, "ingested": 990, "quarantined": 10, "quarantined/undecodable_image": 7, "quarantined/too_small": 3}
    assert console.headline("ingest", ingest) == "990 of 1000 ingested, 10 quarantined (undecodable_image 7, too_small 3)"
    train = {"loss": 3.14159, "steps": 600, "strategy": "deepspeed", "workers": 2, "training/resumed_from_step": 200}
    assert console.headline("train", train) == "final loss 3.142 after 600 steps (deepspeed, 2 worker(s); resumed from step 200)"
    evaluate = {"shape/zeroshot_classification/acc1": 0.5, "colour/zeroshot_classification/acc1": 0.125,
                "x/linear_probe/lp_acc1": 1}  # fmt: skip
    assert console.headline("evaluate", evaluate) == "zero-shot top-1 shape 50.0%, colour 12.5%"
    line = console.headline("register", {"promoted": False, "version": 3, "reason": "kept champion: 0.4 vs 0.5"})
    assert line.startswith("v3 not promoted: kept champion")
    assert console.headline("bias", {"gate": "passed"}) == "gate passed"
    assert console.headline("synth", {"skipped": "data/raw already holds this dataset"}).startswith("skipped: ")


def test_warnings_are_counted_once_each_and_library_deprecations_left_out() -> None:
    found: list = []
    with console.collect_warnings(found):
        for _ in range(16):
            warnings.warn("probe did not converge", UserWarning, stacklevel=1)
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
    assert [(w["category"], w["message"], w["count"]) for w in found] == [("UserWarning", "probe did not converge", 16)]


def test_training_bar_follows_rank0_metrics(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(console, "console", Console(file=io.StringIO(), force_terminal=True))
    metrics = tmp_path / "metrics.jsonl"
    with console.stage("train", "5/10"), console.follow_training(str(metrics), 40, every_s=0.05):
        metrics.write_text("\n".join(json.dumps({"step": s, "loss": 1.0}) for s in (4, 8)) + "\n")
        progress, task = console._state["progress"], console._state["task"]
        t0 = time.time()
        while progress.tasks[0].completed != 8 and time.time() - t0 < 5:
            time.sleep(0.05)
        assert (progress.tasks[0].completed, progress.tasks[0].total) == (8, 40)
    assert console._state["progress"] is None and task == 0
