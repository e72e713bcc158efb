"""Dedup and overlap find planted near-duplicates (resize, JPEG, crop, colour jitter) at the default thresholds."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from components.audit.config import AuditConfig
from components.audit.dedup import dedup, normalise_caption, save_dedup
from components.audit.hashing import descriptor, hashes_to_bits, image_phash
from components.audit.overlap import EvalImages, find_overlap, overlap_audit, run_overlap
from components.audit.verify import thumbnail

from .synthetic import TRANSFORMS, base_image, planted_set

N_TRAIN, N_DUP = 300, 80


@pytest.fixture(scope="module")
def planted():
    return planted_set(N_TRAIN, N_DUP, seed=0)


def _meta(images, captions=None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "key": [f"{i:06d}" for i in range(len(images))],
            "caption": captions or [f"caption {i}" for i in range(len(images))],
            "sha256": [hashlib.sha256(im.tobytes()).hexdigest() for im in images],
            "phash": [image_phash(im) for im in images],
        }
    )


def _vecs(images) -> np.ndarray:
    return np.stack([descriptor(im) for im in images]).astype(np.float32)


def _thumbs(images) -> np.ndarray:
    return np.stack([thumbnail(im) for im in images])


def test_overlap_recall_and_precision_on_planted(planted) -> None:
    train, dups, src = planted
    rng = np.random.default_rng(1)
    clean = [base_image(rng) for _ in range(N_DUP)]  # unrelated eval images
    ev = EvalImages("planted", dups + clean, [f"e{i}" for i in range(2 * N_DUP)], None)
    meta = _meta(train)
    cfg = AuditConfig()
    found = find_overlap(
        meta.key.tolist(), hashes_to_bits(meta.phash), ev, cfg.hamming_threshold, _vecs(train), cfg.embedding_threshold,
        cfg.knn, _thumbs(train), cfg.verify_threshold,
    )  # fmt: skip
    tp = sum(f"{src[i]:06d}" in {k for k, _ in found.get(i, [])} for i in range(N_DUP))
    fp = sum(len(v) for i, v in found.items() if i >= N_DUP) + sum(
        len([k for k, _ in v if k != f"{src[i]:06d}"]) for i, v in found.items() if i < N_DUP
    )
    recall, precision = tp / N_DUP, tp / max(tp + fp, 1)
    assert recall >= 0.95 and precision >= 0.95, (recall, precision)
    # each transform on its own, too
    for t, kind in enumerate(TRANSFORMS):
        rows = range(t, N_DUP, len(TRANSFORMS))
        assert np.mean([f"{src[i]:06d}" in {k for k, _ in found.get(i, [])} for i in rows]) >= 0.9, kind


def test_phash_alone_misses_crops(planted) -> None:
    """Why use_embeddings defaults on: a 1/16 crop moves the pHash far beyond a safe Hamming threshold."""
    train, dups, _src = planted
    meta = _meta(train)
    ev = EvalImages("crops", dups[2::4], [], None)
    found = find_overlap(meta.key.tolist(), hashes_to_bits(meta.phash), ev, AuditConfig().hamming_threshold)
    assert len(found) < 0.5 * len(ev.images)


def test_dedup_clusters_and_policies(planted, tmp_path) -> None:
    train, dups, src = planted
    images = train + dups + [train[0]]  # plus one exact copy
    caps = [f"caption {i}" for i in range(len(images))]
    caps[1], caps[2] = "A red  Circle.", "a red circle"
    meta = _meta(images, caps)
    vecs, thumbs = _vecs(images), _thumbs(images)
    r = dedup(meta, AuditConfig(dedup_policy="keep_one"), vecs, thumbs)
    assert r.n_exact_pairs == 1
    truth = {tuple(sorted((f"{s:06d}", f"{N_TRAIN + t:06d}"))) for t, s in enumerate(src)}
    truth.add(("000000", f"{len(images) - 1:06d}"))
    got = {tuple(sorted(p)) for p in r.pairs[["key_a", "key_b"]].itertuples(index=False)}
    recall, precision = len(got & truth) / len(truth), len(got & truth) / len(got)
    assert recall >= 0.95 and precision >= 0.95, (recall, precision)
    # keep_one excludes all but one member per cluster; drop excludes every member
    assert len(r.exclude_keys) == r.n_in_clusters - r.n_clusters
    drop = dedup(meta, AuditConfig(dedup_policy="drop"), vecs, thumbs)
    assert len(drop.exclude_keys) == drop.n_in_clusters
    assert dedup(meta, AuditConfig(dedup_policy="report"), vecs, thumbs).exclude_keys == []
    with pytest.raises(ValueError, match="thumbnails"):
        dedup(meta, AuditConfig(), vecs)
    assert ["000001", "000002"] in r.caption_groups
    s = save_dedup(r, tmp_path, AuditConfig(dedup_policy="keep_one"))
    assert (tmp_path / "exclude_keys.txt").read_text().split() == r.exclude_keys
    assert json.loads((tmp_path / "dedup.json").read_text())["exact_pairs"] == 1 == s["exact_pairs"]
    assert pd.read_parquet(tmp_path / "dedup_clusters.parquet").shape[0] == r.n_in_clusters


def test_normalise_caption() -> None:
    assert normalise_caption("  A  Red\tCIRCLE!! ") == "a red circle"


def test_eval_set_without_overlap_reports_zero(planted, tmp_path) -> None:
    train, _, _ = planted
    rng = np.random.default_rng(7)
    imgs = [base_image(rng) for _ in range(40)]
    correct = np.array([i % 2 == 0 for i in range(40)])
    ev = EvalImages("fresh", imgs, [f"e{i}" for i in range(40)], correct)
    meta = _meta(train)
    rows, summary = overlap_audit(meta.key.tolist(), meta.phash.tolist(), [ev], AuditConfig(), _vecs(train), _thumbs(train))
    r = rows[0]
    assert r.overlap_rate == 0.0 and r.stats.n_overlap == 0 and r.stats.p_value is None
    assert r.stats.acc_all == r.stats.acc_clean == 0.5 and r.stats.all_minus_clean == 0.0
    assert summary["datasets_no_overlap"] == 1 and summary["mean_overlap"] == 0.0 and summary["significant"] == 0


def test_run_overlap_writes_table_and_page(planted, tmp_path) -> None:
    train, dups, _src = planted
    # dataset A: 10 overlapping images all right, 30 clean images half right
    rng = np.random.default_rng(3)
    a_imgs = dups[:10] + [base_image(rng) for _ in range(30)]
    a_correct = np.array([True] * 10 + [i % 2 == 0 for i in range(30)])
    b_imgs = [base_image(rng) for _ in range(20)]
    evals = [
        EvalImages("a", a_imgs, [f"a{i}" for i in range(40)], a_correct),
        EvalImages("b", b_imgs, [f"b{i}" for i in range(20)], None),
    ]
    meta = _meta(train)
    keys = meta.key.tolist()
    doc = run_overlap(
        keys, meta.phash.tolist(), evals, AuditConfig(), tmp_path, lambda ks: {k: train[int(k)] for k in ks}, _vecs(train),
        _thumbs(train),
    ).doc  # fmt: skip
    a = next(d for d in doc["datasets"] if d["dataset"] == "a")
    assert a["n_overlap"] == 10 and a["overlap_rate"] == 0.25
    assert a["acc_overlap"] == 1.0 and a["acc_clean"] == 0.5 and a["p_value"] == pytest.approx(0.5**10)
    assert a["significant"] is True  # one test: 1/1024 < 0.05
    assert doc["summary"]["datasets_no_overlap"] == 1 and doc["summary"]["median_overlap"] == pytest.approx(0.125)
    page = (tmp_path / "overlap.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 * 10 and "no detected overlap" in page
    assert json.loads((tmp_path / "overlap.json").read_text())["summary"]["tests"] == 1
