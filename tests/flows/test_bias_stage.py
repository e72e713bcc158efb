"""Stage glue: `run_bias` reads OUT/train/model and data/raw/eval/bias_probe, writes OUT/bias, gates on params."""

from __future__ import annotations

import json
from pathlib import Path

from flows.cli import build_parser
from flows.params import load_params
from flows.stages import run_bias
from tests.components.bias.test_bias_probe_run import build_toy

PARAMS = Path(__file__).parents[2] / "params.yaml"


def test_bias_stage_and_gate(tmp_path):
    out = tmp_path / "out"
    probe = build_toy(tmp_path, out / "train" / "model", out / "raw" / "eval" / "bias_probe")
    common = [
        f"pipeline.out_root={out}",
        f"data.raw_root={out / 'raw'}",
        f"bias.probe={probe}",
        "bias.bootstrap=20",
        "bias.min_group_size=2",
        "bias.device=cpu",
        "bias.linear_probe=false",
    ]
    res = run_bias(load_params(PARAMS, common))
    assert res.gate.passed and res.summary["n_images"] == 24 and "findings" in res.summary
    assert json.loads((out / "bias" / "summary.json").read_text())["gate_passed"] is True
    assert (out / "evaluate" / "cache").is_dir()  # the evaluation's cache by default
    # a label set of one flagged label: every image is flagged, whatever the (random) model
    only = tmp_path / "only_flagged.yaml"
    only.write_text("name: only\nclasses: []\nflagged: {odd: [blob]}\nattributes: [tone]\n")
    strict = run_bias(load_params(PARAMS, [*common, f"bias.probe={only}", "bias.max_flagged_rate=0.5"]))
    assert not strict.gate.passed and "exceeds max_flagged_rate 0.5" in strict.gate.reason
    assert strict.summary["base/flagged:any"] == 1.0


def test_bias_stage_skips_without_dataset(tmp_path):
    res = run_bias(load_params(PARAMS, [f"pipeline.out_root={tmp_path}", f"data.raw_root={tmp_path / 'raw'}"]))
    assert "skipped" in res.summary and res.gate is None


def test_cli_has_bias():
    args = build_parser().parse_args(["bias", "--probe", "fairface", "--dataset", "/data/fairface"])
    assert args.probe == "fairface" and args.dataset == "/data/fairface"
