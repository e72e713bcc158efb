import json

from components.report import ReportConfig, build_report
from components.report.html import render_table


def test_report_collects_stage_outputs(tmp_path) -> None:
    (tmp_path / "ingest").mkdir()
    (tmp_path / "ingest" / "summary.json").write_text(json.dumps({"ingested": 90, "quarantined": {"bad_image": 10}}))
    (tmp_path / "validate").mkdir()
    (tmp_path / "validate" / "result.json").write_text(
        json.dumps({"passed": False, "expectations": [{"name": "x", "ok": False}]})
    )
    (tmp_path / "train").mkdir()
    lines = [json.dumps({"step": s, "loss": 4.0 - s / 10, "lr": 1e-3}) for s in range(30)]
    (tmp_path / "train" / "metrics.jsonl").write_text("\n".join(lines))
    (tmp_path / "evaluate").mkdir()
    (tmp_path / "evaluate" / "metrics.json").write_text(json.dumps({"zeroshot/shape/top1": 0.75}))
    res = build_report(tmp_path, ReportConfig(curve_smoothing=5))
    assert res.sections == ["Data ingestion", "Validation", "Training", "Evaluation", "Model card"]
    page = open(res.html_path).read()
    assert "quarantined/bad_image" in page and "Validation failed." in page and "VALIDATION FAILED" in page
    assert page.count("<style>") == 1 and "--ok-bg" in page  # the one shared stylesheet, inlined
    assert "Not registered" in page  # no registry: the first screen says so instead of guessing
    assert "data:image/png;base64," in page  # the training curve is inlined
    numbers = json.loads(open(res.json_path).read())
    assert numbers["evaluate"]["zeroshot/shape/top1"] == 0.75 and numbers["train"]["last"]["step"] == 29
    assert "zeroshot/shape/top1: 0.7500" in open(res.model_card_path).read()


def test_render_table_escapes_and_unions_columns() -> None:
    out = render_table([{"a": "<b>"}, {"b": 0.123456}])
    assert "&lt;b&gt;" in out and "<th>a</th><th>b</th>" in out and "0.1235" in out


def test_first_screen_compares_with_the_previous_champion(tmp_path) -> None:
    """v1 is the old champion, v2 (this run) beats it on the gate metric: the headline says promoted, with the delta."""
    m = "shape/zeroshot_classification/acc1"
    old = {m: 0.40, "shape/linear_probe/lp_acc1": 0.50}
    new = {m: 0.55, "shape/linear_probe/lp_acc1": 0.45, "colour/zeroshot_classification/acc1": 0.3}
    (tmp_path / "evaluate").mkdir()
    (tmp_path / "evaluate" / "metrics.json").write_text(json.dumps(new))
    entries = [{"version": 1, "promoted": True, "metrics": old, "reason": "first model"},
               {"version": 2, "promoted": True, "metrics": new, "reason": "promoted"}]  # fmt: skip
    (tmp_path / "registry.json").write_text(json.dumps({"champion": entries[1], "entries": entries}))
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "overlap.json").write_text(json.dumps({"summary": {"line": "2 of 3 datasets clean"}, "datasets": []}))
    (tmp_path / "audit" / "summary.json").write_text(json.dumps({"gate/passed": False}))
    (tmp_path / "logs" / "warnings").mkdir(parents=True)
    w = [{"category": "UserWarning", "message": "probe did not converge", "count": 16, "where": "x.py:1"}]
    (tmp_path / "logs" / "warnings" / "evaluate.json").write_text(json.dumps(w))
    res = build_report(tmp_path, ReportConfig(), registry_path=tmp_path / "registry.json", gate_metric=m)
    assert res.verdict == "Promoted: champion v2"
    md = res.headline_md
    assert f"{m}: 55.0% vs champion v1 40.0% (+15.0 points)" in md
    assert "| shape | 55.0% (+15.0 vs 40.0%) | 45.0% (-5.0 vs 50.0%) |" in md and "| colour | 30.0% | - |" in md
    assert "2 of 3 datasets clean; gate FAILED." in md and "- **Warnings:** 16" in md
    page = open(res.html_path).read()
    first_screen = page[: page.index('<nav class="toc">')]
    assert "Promoted: champion v2" in first_screen and 'class="delta-down"' in first_screen
    assert "probe did not converge" not in first_screen  # the warnings' text is below, the count above
    assert "probe did not converge" in page and res.sections[-3:] == ["Warnings", "Model registry", "Model card"]


def test_wise_ft_transfer_table_is_shown_when_evaluated(tmp_path) -> None:
    (tmp_path / "evaluate" / "transfer").mkdir(parents=True)
    (tmp_path / "evaluate" / "metrics.json").write_text(json.dumps({"colors/zeroshot_classification/acc1": 0.5}))
    rows = [{"model": "initial", "colors": 0.61}, {"model": "fine-tuned", "colors": 0.5},
            {"model": "WiSE-FT a=0.5", "colors": 0.58}]  # fmt: skip
    doc = {"alpha": 0.5, "initial": "models/base", "rows": rows}
    (tmp_path / "evaluate" / "transfer" / "transfer.json").write_text(json.dumps(doc))
    res = build_report(tmp_path, ReportConfig())
    assert "Zero-shot transfer kept (WiSE-FT)" in res.sections
    page = open(res.html_path).read()
    assert "WiSE-FT a=0.5" in page and "models/base" in page and "0.61" in page
    assert json.loads(open(res.json_path).read())["transfer"]["alpha"] == 0.5
