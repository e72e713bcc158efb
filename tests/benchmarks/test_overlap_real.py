"""A small version of benchmarks/overlap_real.py on real photos shipped in the venv: planted copies must be found.

Tiles of scikit-learn's two bundled photos and matplotlib's grace_hopper.jpg (no apt package, no download), every
copy family of the benchmark planted, run through `overlap.audit_dataset` and `dedup.dedup` with the default
config. Bars are below the full benchmark's (fewer samples per family) but fail when a family stops being found.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from overlap_data import REPORTED_ONLY, load_tiles, plant, score_dedup, score_overlap

pytestmark = pytest.mark.smoke
KNOWN_WEAK = ("rotate_<=5deg", "text_logo_overlay")


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
    feats = [image_features(im) for _, im, _ in train]
    vecs, thumbs = np.stack([f[0] for f in feats]), np.stack([f[1] for f in feats])
    cfg = AuditConfig()
    r = audit_dataset(keys, hashes_to_bits(hexes), EvalImages("tiles", [im for _, im, _ in ev], [], None), cfg, vecs, thumbs)
    s = score_overlap(r.matches, ev, p["truth_eval"])
    # today's level (BENCHMARKS.md, "Overlap on real images"): issue #17's bar of 0.95 is not met yet; rotations and
    # caption overlays on photo tiles are the known misses
    assert s["recall"] >= 0.75 and s["pair_precision"] >= 0.8, s
    missed = {f: v for f, v in s["found_by_family"].items() if f not in (*REPORTED_ONLY, *KNOWN_WEAK) and int(v[0]) < 2}
    assert not missed, s["found_by_family"]  # at most one of three copies missed per family
    assert s["clean_eval_flagged"] <= 4, s
    meta = pd.DataFrame({"key": keys, "caption": keys, "phash": hexes,
                         "sha256": [hashlib.sha256(im.tobytes()).hexdigest() for _, im, _ in train]})  # fmt: skip
    d = dedup(meta, AuditConfig(dedup_policy="keep_one"), vecs, thumbs)
    sd = score_dedup(list(zip(d.pairs["key_a"], d.pairs["key_b"])), d.exclude_keys, p["truth_dup"])
    # today's level: 7 of the 10 planted training copies (flips aside) found, 30 pairs in all; the look-alike tiles
    # dedup pairs are the known weakness on real photos (BENCHMARKS.md)
    assert sd["pair_recall"] >= 0.6 and sd["pairs_found"] <= 40, sd
