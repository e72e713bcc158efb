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
    assert "quarantined/bad_image" in page and "<span class='fail'>failed</span>" in page
    assert "data:image/png;base64," in page  # the training curve is inlined
    numbers = json.loads(open(res.json_path).read())
    assert numbers["evaluate"]["zeroshot/shape/top1"] == 0.75 and numbers["train"]["last"]["step"] == 29
    assert "zeroshot/shape/top1: 0.7500" in open(res.model_card_path).read()


def test_render_table_escapes_and_unions_columns() -> None:
    out = render_table([{"a": "<b>"}, {"b": 0.123456}])
    assert "&lt;b&gt;" in out and "<th>a</th><th>b</th>" in out and "0.1235" in out
