import json

from components.data.config import ValidateConfig
from components.data.validate import validate


def test_validation_passes_with_lenient_thresholds(ingested, tmp_path) -> None:
    r = validate(ingested, str(tmp_path / "validate"), ValidateConfig(max_quarantine_rate=0.9))
    assert r.passed and not r.failed and r.n_rows == 12, r.message
    doc = json.loads((tmp_path / "validate/result.json").read_text())
    assert doc["passed"] and len(doc["expectations"]) == 16
    assert "PASSED" in (tmp_path / "validate/report.html").read_text()


def test_validation_fails_with_a_readable_message(ingested, tmp_path) -> None:
    cfg = ValidateConfig(max_quarantine_rate=0.05, max_side=16, warn_only=("height_bounds",))
    r = validate(ingested, str(tmp_path / "validate"), cfg)
    assert not r.passed
    assert r.failed == ["width_bounds", "quarantine_rate"] and r.warnings == ["height_bounds"]
    assert "2 blocking expectation(s) failed" in r.message
    assert "width_bounds: 12 of 12 rows unexpected" in r.message and "quarantine_rate: observed 0.57" in r.message
    assert "height_bounds (warn only)" in r.message
    assert json.loads((tmp_path / "validate/result.json").read_text())["failed"] == r.failed
