"""A small version of benchmarks/overlap_real.py on real photos shipped in the venv: planted copies must be found.

Tiles of scikit-learn's two bundled photos and matplotlib's grace_hopper.jpg (no apt package, no download), every
copy family of the benchmark planted, run through `overlap.audit_dataset` and `dedup.dedup` with the default
config (verify_method: orb) and with the photo-data setting (verify_method: ecc, crop_queries: true). The bars sit
below what the detector reaches here (BENCHMARKS.md); they fail when a
family stops being found or look-alikes start to pass.
"""

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.audit.config import AuditConfig
from components.audit.dedup import dedup
from components.audit.hashing import hashes_to_bits, image_phash
from components.audit.overlap import EvalImages, audit_dataset
from components.audit.shards import image_features
from components.audit.verify import thumb_size

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from overlap_data import load_tiles, plant, score_dedup, score_overlap

pytestmark = pytest.mark.smoke
MUST_FIND = ("brightness_contrast", "upscale1.4_jpeg70", "jpeg_q30-90", "rescale_0.5-2x", "grey")


def _photos() -> list[Path]:
    import matplotlib
    import sklearn.datasets

    files = sorted((Path(sklearn.datasets.__file__).parent / "images").glob("*.jpg"))
    return [*files, Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"]


def test_planted_copies_in_real_photo_tiles() -> None:
    tiles = load_tiles(_photos())
    assert len(tiles) > 420, len(tiles)
    p = plant({"tiles": tiles}, n_train=360, per_cell=3, clean_per_source=60, dup_per_cell=1, seed=0)
    train, ev = p["train"], p["eval"]
    keys = [k for k, _, _ in train]
    hexes = [image_phash(im) for _, im, _ in train]
    cfg = AuditConfig()
    feats = [image_features(im, thumb_size(cfg.verify_method)) for _, im, _ in train]
    vecs, thumbs = np.stack([f[0] for f in feats]), np.stack([f[1] for f in feats])
    r = audit_dataset(keys, hashes_to_bits(hexes), EvalImages("tiles", [im for _, im, _ in ev], [], None), cfg, vecs, thumbs)
    s = score_overlap(r.matches, ev, p["truth_eval"])
    # The default detector (pixel check + ORB/RANSAC at orb_threshold 0.1, BENCHMARKS.md "Overlap and dedup on real
    # images") finds 17 of 30 copies here (every grey copy, 1 of 3 corner crops, no 25% crop, overlay or flip) with
    # no false pair; the pixel check alone found 12 (no grey copy). Issue #17's bar (0.95 per family) is far off.
    assert s["recall"] >= 0.5 and s["pair_precision"] >= 0.9, s
    weak = {f: v for f, v in s["found_by_family"].items() if f in MUST_FIND and int(v[0]) < 2}
    assert not weak, s["found_by_family"]  # at most one of three copies missed in these families
    assert s["clean_eval_flagged"] <= 2, s
    meta = pd.DataFrame({"key": keys, "caption": keys, "phash": hexes,
                         "sha256": [hashlib.sha256(im.tobytes()).hexdigest() for _, im, _ in train]})  # fmt: skip
    d = dedup(meta, AuditConfig(dedup_policy="keep_one"), vecs, thumbs)
    sd = score_dedup(list(zip(d.pairs["key_a"], d.pairs["key_b"])), d.exclude_keys, p["truth_dup"])
    assert sd["pair_recall"] >= 0.6 and sd["pairs_found"] <= 20, sd  # orb: 7 of 10 planted pairs, 14 pairs found (pixel: 5, 12)

    # The photo-data setting (verify_method ecc + crop_queries, same features): 24 of 30 copies, every crop, corner crop
    # and rotation, 2 false pairs (BENCHMARKS.md "Dense alignment"). Bars below that, above what orb reaches (17, no 25% crop).
    ecc = AuditConfig(verify_method="ecc", crop_queries=True)
    r = audit_dataset(keys, hashes_to_bits(hexes), EvalImages("tiles", [im for _, im, _ in ev], [], None), ecc, vecs, thumbs)
    s = score_overlap(r.matches, ev, p["truth_eval"])
    assert s["recall"] >= 0.7 and s["pair_precision"] >= 0.85 and s["clean_eval_flagged"] <= 4, s
    geometric = ("corner_crop_1/7", "crop_<=25%", "rotate_<=5deg")
    assert sum(int(s["found_by_family"][f][0]) for f in geometric) >= 8, s["found_by_family"]
    d = dedup(meta, AuditConfig(dedup_policy="keep_one", verify_method="ecc"), vecs, thumbs)
    sd = score_dedup(list(zip(d.pairs["key_a"], d.pairs["key_b"])), d.exclude_keys, p["truth_dup"])
    assert sd["pair_recall"] >= 0.6 and sd["pairs_found"] <= 12, sd  # ecc: 7 of 10 planted pairs, 7 pairs found
