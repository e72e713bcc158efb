"""A small version of benchmarks/overlap_real.py on real photos shipped in the venv: planted copies must be found.

Tiles of scikit-learn's two bundled photos and matplotlib's grace_hopper.jpg (no apt package, no download), every
copy family of the benchmark planted, run through `overlap.audit_dataset` and `dedup.dedup` with the default
config (verify_method: ecc, crop_queries: true) and with the cheaper former default (verify_method: orb, no crop
queries). The bars sit below what each reaches here (BENCHMARKS.md); they fail when a family stops being found or
look-alikes start to pass.
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
GEOMETRIC = ("corner_crop_1/7", "crop_<=25%", "rotate_<=5deg")
MUST_FIND_ECC = (
    "brightness_contrast",
    "upscale1.4_jpeg70",
    "shift2px_pad",
    "rescale_0.5-2x",
    "grey",
    "text_logo_overlay",
    *GEOMETRIC,
)
MUST_FIND_ORB = ("brightness_contrast", "upscale1.4_jpeg70", "rescale_0.5-2x", "grey")


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
    assert (cfg.verify_method, cfg.crop_queries) == ("ecc", True)  # the defaults this test's first half measures
    feats = [image_features(im, thumb_size(cfg.verify_method)) for _, im, _ in train]
    vecs, thumbs = np.stack([f[0] for f in feats]), np.stack([f[1] for f in feats])
    meta = pd.DataFrame({"key": keys, "caption": keys, "phash": hexes,
                         "sha256": [hashlib.sha256(im.tobytes()).hexdigest() for _, im, _ in train]})  # fmt: skip
    images = EvalImages("tiles", [im for _, im, _ in ev], [], None)

    # Default (ecc + crop and band queries): 29 of 30 copies (all 3 of each family but JPEG q30-90 2, flips 0; overlay
    # 1 before the band queries), 2 false pairs (2 clean tiles flagged); dedup 7 of 10 planted pairs among 8 found.
    r = audit_dataset(keys, hashes_to_bits(hexes), images, cfg, vecs, thumbs)
    s = score_overlap(r.matches, ev, p["truth_eval"])
    assert s["recall"] >= 0.85 and s["pair_precision"] >= 0.85 and s["clean_eval_flagged"] <= 4, s
    weak = {f: v for f, v in s["found_by_family"].items() if f in MUST_FIND_ECC and int(v[0]) < 2}  # 2 of 3 each
    assert not weak, s["found_by_family"]
    assert sum(int(s["found_by_family"][f][0]) for f in GEOMETRIC) >= 8, s["found_by_family"]
    d = dedup(meta, AuditConfig(dedup_policy="keep_one"), vecs, thumbs)
    sd = score_dedup(list(zip(d.pairs["key_a"], d.pairs["key_b"])), d.exclude_keys, p["truth_dup"])
    assert sd["pair_recall"] >= 0.6 and sd["pairs_found"] <= 12, sd

    # verify_method orb without crop queries (the former default; same features): 17 of 30 (every brightness, upscale,
    # rescale and grey copy, no 25% crop or overlay), no false pair; dedup 7 of 10 among 14. Bars below that.
    orb = AuditConfig(verify_method="orb", crop_queries=False)
    r = audit_dataset(keys, hashes_to_bits(hexes), images, orb, vecs, thumbs)
    s = score_overlap(r.matches, ev, p["truth_eval"])
    assert s["recall"] >= 0.5 and s["pair_precision"] >= 0.9 and s["clean_eval_flagged"] <= 2, s
    weak = {f: v for f, v in s["found_by_family"].items() if f in MUST_FIND_ORB and int(v[0]) < 2}
    assert not weak, s["found_by_family"]
    d = dedup(meta, AuditConfig(dedup_policy="keep_one", verify_method="orb", crop_queries=False), vecs, thumbs)
    sd = score_dedup(list(zip(d.pairs["key_a"], d.pairs["key_b"])), d.exclude_keys, p["truth_dup"])
    assert sd["pair_recall"] >= 0.6 and sd["pairs_found"] <= 20, sd
