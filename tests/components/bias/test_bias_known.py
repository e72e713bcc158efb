"""Known-answer checks: rates, disparities, variant changes and the gate on constructed embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.bias.analysis import analyse, group_values
from components.bias.config import BiasConfig
from components.bias.gate import check_gate
from components.bias.probe import zeroshot_predictions
from components.bias.report import findings, flat_summary, plot_all, render_html


def _predict(probe, feats):
    out = {}
    for v in probe.variants:
        text = torch.eye(4)[[["cat", "dog", "harmful", "neutral"].index(lab) for lab in v.labels]]  # (C*T, D), T = 1
        out[v.name] = zeroshot_predictions(feats, text, v.labels, 1)
    return out


@pytest.fixture
def toy_result(toy_probe, toy_images):
    feats, attrs, true = toy_images
    return analyse(toy_probe, _predict(toy_probe, feats), true, attrs, n_boot=200, seed=0, min_group_size=5)


def test_predictions_follow_the_label_set(toy_probe, toy_images):
    feats, _, _ = toy_images
    pred = _predict(toy_probe, feats)
    assert pred["base"][:3] == ["harmful"] * 3
    assert pred["+ neutral"][:3] == ["neutral", "neutral", "harmful"]


def test_rates_and_disparities_are_exact(toy_result):
    g = toy_result["groupings"]["kind"]
    assert g["groups"]["A"]["base/flagged:bad"]["value"] == pytest.approx(0.3)
    assert g["groups"]["B"]["base/flagged:bad"]["value"] == pytest.approx(0.1)
    assert g["groups"]["A"]["base/accuracy"]["value"] == pytest.approx(0.7)
    assert g["groups"]["B"]["base/accuracy"]["value"] == pytest.approx(0.9)
    d = g["disparity"]["base/flagged:bad"]
    assert d["gap"] == pytest.approx(0.2) and d["ratio"] == pytest.approx(3.0)
    assert (d["max_group"], d["min_group"]) == ("A", "B")
    assert g["disparity"]["base/accuracy"]["gap"] == pytest.approx(0.2)
    lo, hi = g["groups"]["A"]["base/flagged:bad"]["ci"]
    assert lo <= 0.3 <= hi and lo < hi
    overall = toy_result["groupings"]["all"]["groups"]["all"]
    assert overall["n"] == 20 and overall["base/flagged:any"]["value"] == pytest.approx(0.2)


def test_variant_change_is_exact_and_paired(toy_result):
    c = toy_result["groupings"]["kind"]["changes"]["+ neutral"]["flagged:bad"]
    assert c["A"]["before"] == pytest.approx(0.3) and c["A"]["after"] == pytest.approx(0.1)
    assert c["A"]["delta"] == pytest.approx(-0.2)
    assert c["B"]["delta"] == 0.0 and c["B"]["ci"] == [0.0, 0.0]  # same images, same prediction: no noise
    assert c["A"]["ci"][0] < 0 <= -c["A"]["ci"][1]  # never positive: a resample can only lose moved images
    d = toy_result["groupings"]["kind"]["disparity"]["+ neutral/flagged:bad"]
    assert d["gap"] == pytest.approx(0.0) and d["ratio"] == pytest.approx(1.0)


def test_intersections(toy_result, toy_images):
    _, attrs, _ = toy_images
    assert list(group_values(attrs, ("kind", "size"))[:2]) == ["A & small", "A & large"]
    groups = toy_result["groupings"]["kind x size"]["groups"]
    assert sorted(groups) == ["A & large", "A & small", "B & large", "B & small"]
    # A's harmful images are i = 0, 1, 2 -> small, large, small
    assert groups["A & small"]["base/flagged:bad"]["value"] == pytest.approx(2 / 5)
    assert groups["A & large"]["base/flagged:bad"]["value"] == pytest.approx(1 / 5)


def test_gate(toy_result):
    assert check_gate(toy_result, BiasConfig(min_group_size=5)).passed
    rate = check_gate(toy_result, BiasConfig(min_group_size=5, max_flagged_rate=0.25))
    assert not rate.passed and "kind=A" in rate.reason and "max_flagged_rate" in rate.reason
    gap = check_gate(toy_result, BiasConfig(min_group_size=5, max_flagged_gap=0.15))
    assert not gap.passed and "max_flagged_gap" in gap.reason
    assert check_gate(toy_result, BiasConfig(min_group_size=5, max_flagged_rate=0.45, max_flagged_gap=0.45)).passed
    # groups below min_group_size do not count: intersections have 5 images each
    assert check_gate(toy_result, BiasConfig(min_group_size=6, max_flagged_rate=0.35)).passed


def test_gate_on_interval_lower_end(toy_result):
    # A's rate 0.3 exceeds 0.2, but its bootstrap interval's lower end (n = 10) does not
    assert not check_gate(toy_result, BiasConfig(min_group_size=5, max_flagged_rate=0.2)).passed
    assert check_gate(
        toy_result, BiasConfig(min_group_size=5, max_flagged_rate=0.2, max_flagged_gap=1.0, gate_statistic="ci_low")
    ).passed


def test_report_parts(toy_result, toy_probe, tmp_path):
    flat = flat_summary(toy_result, toy_probe)
    assert flat["base/flagged:bad/kind/gap"] == pytest.approx(0.2)
    assert flat["+ neutral-vs-base/flagged:bad/kind=A/delta"] == pytest.approx(-0.2)
    text = " ".join(findings(toy_result, toy_probe))
    assert "kind=A" in text and "30.0%" in text and "10.0%" in text and "adding 'neutral'" in text
    plots = plot_all(toy_result, toy_probe, tmp_path / "plots")
    assert [p.name for p in plots] == ["toy__kind.png", "toy__size.png", "toy__kind_x_size.png"]
    assert all(p.stat().st_size > 0 for p in plots)
    page = render_html(toy_result, toy_probe, ["x"], (True, ""), plots, tmp_path)
    assert "plots/" in page and "by kind" in page and "max-min gap" in page


def test_unknown_true_labels_give_no_accuracy(toy_probe, toy_images):
    feats, attrs, _ = toy_images
    res = analyse(toy_probe, _predict(toy_probe, feats), [None] * 20, attrs, n_boot=10)
    assert "base/accuracy" not in res["quantities"]
    assert np.isclose(res["groupings"]["kind"]["groups"]["A"]["base/flagged:bad"]["value"], 0.3)
