"""benchmarks/overlap_data.py's scoring: pooling several plantings (seeds) sums counts and derives rates from the sums."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from overlap_data import pool_overlap, score_overlap


def _planting(found_jpeg: bool, clean_flag: bool) -> dict:
    """Three eval rows: a JPEG copy (row 0), a flip (row 1), a clean image (row 2)."""
    ev = [("a", None, "clipart"), ("b", None, "clipart"), ("c", None, "clipart")]
    truth = {0: ("ta", "jpeg_q30-90", "clipart"), 1: ("tb", "hflip", "clipart")}
    matches = {0: ["ta", "tx"] if found_jpeg else ["tx"], 1: ["tb"]}
    if clean_flag:
        matches[2] = ["ty"]
    return score_overlap(matches, ev, truth)


def test_pooled_counts_are_sums_and_rates_come_from_them() -> None:
    one, two = _planting(True, False), _planting(False, True)
    assert one["flagged_right"] == 2 and two["flagged_right"] == 1  # a flagged flip holding its copy is right
    p = pool_overlap([one, two])
    assert p["found_by_family"] == {"jpeg_q30-90": "1/2", "hflip": "2/2"}
    assert p["recall"] == 0.5 and p["min_family_recall"] == 0.5 and p["flip_recall"] == 1.0
    assert (p["true_pairs"], p["false_pairs"]) == (3, 3)
    assert p["pair_precision"] == 0.5
    assert p["flagged_eval"] == 2 + 3 and p["image_precision"] == pytest.approx(3 / 5)
    assert (p["clean_eval_flagged"], p["clean_eval"]) == (1, 2)
