"""Train/eval overlap audit (CLIP paper, Section 5): near-duplicate eval images, All/Clean/Overlap accuracy, tests."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
from PIL import Image

from components.evaluate.dataset import EvalDataset, eval_dirs, load_eval_dataset
from components.evaluate.images import open_image
from components.io import json_safe, write_atomic, write_json

from .config import AuditConfig
from .hashing import (
    CROP_BOXES,
    build_index,
    build_vector_index,
    crop_query_pairs,
    descriptor,
    hamming,
    hashes_to_bits,
    image_phash,
    nearest,
    range_pairs,
    vector_pairs,
)
from .stats import SplitStats, bonferroni, split_stats
from .verify import thumbnail, verify_pairs

# with crop queries, an eval image keeps at most this many x `knn` candidates, the best cosines (on the real-image
# benchmark at 9.5k the planted copy ranks within the first 20 for 298 of 300 copies; all 76 queries' neighbours: ~42)
CROP_PER_IMAGE = 2
ImageLoader = Callable[[Sequence[str]], dict[str, Image.Image]]  # train keys -> images


@dataclass(frozen=True)
class EvalImages:
    """One eval dataset as the audit needs it: images (decoded), per-sample correctness if zero-shot ran."""

    name: str
    images: list[Image.Image]
    refs: list[str]  # manifest `image` values, for the HTML page
    correct: np.ndarray | None  # (N,) bool, manifest order


@dataclass(frozen=True)
class DatasetOverlap:
    """One table row: overlap and the statistics of the split."""

    dataset: str
    threshold: float  # aligned residual (verify) or Hamming distance
    overlap_rate: float
    stats: SplitStats
    significant: bool | None
    shifted: bool | None
    overlap_rows: list[int]
    matches: dict[int, list[str]]  # eval row -> matching train keys
    closest: list[tuple[int, str, float, bool]]  # (eval row, train key, score, counted) for the review page
    diagnostics: dict = field(default_factory=dict)  # candidates, capped (eval images at the audit.knn cap)


def eval_images(ds: EvalDataset, predictions_csv: str | None = None) -> EvalImages:
    """A manifest dataset's images decoded (manifest order) and, if present, zero-shot per-sample correctness."""
    images = [open_image(url) for url in ds.images]
    correct = None
    if predictions_csv is not None:
        fs, path = fsspec.core.url_to_fs(predictions_csv)
        if fs.exists(path):
            with fs.open(path, "r") as f:
                pred = pd.read_csv(f).sort_values("index")
            if len(pred) != len(ds):
                raise ValueError(
                    f"{predictions_csv}: {len(pred)} rows, but {ds.root}/manifest.csv has {len(ds)}; re-run evaluate"
                )
            correct = pred["correct"].astype(bool).to_numpy()
    return EvalImages(Path(ds.root).name, images, [str(r) for r in ds.refs or ds.images], correct)


@dataclass(frozen=True)
class OverlapResult:
    """What `run_overlap` found: per-dataset rows (for the gate), the summary (with its one-line verdict), the
    document written to overlap.json."""

    rows: list[DatasetOverlap]
    summary: dict
    doc: dict


def load_eval_images(eval_dir: str, predictions_csv: str | None = None) -> EvalImages:
    """Decode a dataset directory's images (manifest order) and, if present, zero-shot per-sample correctness."""
    return eval_images(load_eval_dataset(eval_dir), predictions_csv)


def load_eval_sets(eval_root: str, predictions_root: str, include: Sequence[str] | None = None) -> list[EvalImages]:
    """Every manifest directory under `eval_root` (only those named in `include`, when given), sorted by name, with
    the evaluation's per-sample zero-shot results (`<predictions_root>/<name>/zeroshot_predictions.csv`) if present."""
    dirs = [d for d in eval_dirs(eval_root) if include is None or Path(d).name in include]
    return [load_eval_images(d, f"{predictions_root.rstrip('/')}/{Path(d).name}/zeroshot_predictions.csv") for d in dirs]


def overlap_candidates(
    train_bits: np.ndarray,
    ev: EvalImages,
    hamming_threshold: int,
    train_vecs: np.ndarray | None = None,
    min_cos: float = 0.8,
    k: int = 10,
    train_thumbs: np.ndarray | None = None,
    verify_threshold: float | None = None,
    counts: dict | None = None,
    verify_method: str = "pixel",
    orb: tuple[float, int] = (0.1, 8),
    ecc_threshold: float = 0.1,
    crop_queries: bool = False,
) -> pd.DataFrame:
    """Candidate (eval row, train index) pairs: pHash within the threshold, or descriptor cosine >= `min_cos` among k-NN.

    Columns row, train, hamming, box (index into hashing.CROP_BOXES of the eval crop that found the pair, 0: the
    whole image), residual (aligned check of the pair; NaN without `train_thumbs`; with
    `verify_threshold`, pairs far above it keep their half-resolution score, see AlignedVerifier.residual).
    `counts` gets "candidates" and "capped" (eval images whose descriptor neighbours in range reached the cap k).
    `verify_method`, `orb` (orb_threshold, orb_min_inliers) and `ecc_threshold`: see verify.verify_pairs.
    `crop_queries` (needs `train_vecs` and `train_thumbs`): descriptor candidates by hashing.crop_query_pairs.
    """
    q = hashes_to_bits(image_phash(img) for img in ev.images)
    qi, tj, _ = range_pairs(build_index(train_bits, hamming_threshold), q, hamming_threshold)
    ev_thumbs = None
    if train_thumbs is not None:
        ev_thumbs = np.stack([thumbnail(img, train_thumbs.shape[1]) for img in ev.images]) if ev.images else train_thumbs[:0]
    box = np.zeros(len(qi), np.int64)  # per candidate: the CROP_BOXES index of the eval crop that found it (0: whole)
    if train_vecs is not None and crop_queries and ev_thumbs is not None:
        vi, vj, vb, _ = crop_query_pairs(train_vecs, train_thumbs, ev_thumbs, k, min_cos, counts, CROP_PER_IMAGE * k)
        qi, tj, box = np.concatenate([vi, qi]), np.concatenate([vj, tj]), np.concatenate([vb, box])
    elif train_vecs is not None:
        ev_vecs = np.stack([descriptor(img) for img in ev.images]) if ev.images else np.zeros((0, train_vecs.shape[1]))
        vi, vj, _ = vector_pairs(build_vector_index(train_vecs), ev_vecs, k, min_cos, counts=counts)
        qi, tj, box = np.concatenate([qi, vi]), np.concatenate([tj, vj]), np.concatenate([box, np.zeros(len(vi), np.int64)])
    pid = qi.astype(np.int64) * len(train_bits) + tj
    _, first = np.unique(pid, return_index=True)  # (P,) sorted distinct (row, train); the crop-query box wins
    pairs = np.stack([qi[first], tj[first]], axis=1).astype(np.int64)
    box = box[first]
    if counts is not None:
        counts["candidates"] = len(pairs)
    res = np.full(len(pairs), np.nan, np.float32)
    if ev_thumbs is not None and len(pairs):
        t = 0.125 if verify_threshold is None else verify_threshold
        # pixel check one way (the eval image is the copy); ORB + RANSAC and ECC are symmetric (either may be the crop)
        res = verify_pairs(ev_thumbs, train_thumbs, pairs[:, 0], pairs[:, 1], t, verify_method, False, *orb,
                           ecc_threshold=ecc_threshold, boxes=[CROP_BOXES[b] for b in box])  # fmt: skip
    hd = hamming(q[pairs[:, 0]], train_bits[pairs[:, 1]])
    return pd.DataFrame({"row": pairs[:, 0], "train": pairs[:, 1], "hamming": hd, "residual": res, "box": box})


def find_overlap(
    train_keys: Sequence[str],
    train_bits: np.ndarray,
    ev: EvalImages,
    threshold: int,
    train_vecs: np.ndarray | None = None,
    min_cos: float = 0.8,
    k: int = 10,
    train_thumbs: np.ndarray | None = None,
    verify_threshold: float = 0.125,
    verify_method: str = "pixel",
    orb: tuple[float, int] = (0.1, 8),
    ecc_threshold: float = 0.1,
    crop_queries: bool = False,
) -> dict[int, list[tuple[str, int]]]:
    """Eval row -> [(train key, Hamming)] of its duplicates: the candidates, verified when `train_thumbs` are given."""
    c = overlap_candidates(train_bits, ev, threshold, train_vecs, min_cos, k, train_thumbs, verify_threshold, None,
                           verify_method, orb, ecc_threshold, crop_queries)  # fmt: skip
    if train_thumbs is not None:
        c = c[c["residual"] <= verify_threshold]
    return _by_row(c, train_keys)


def _by_row(c: pd.DataFrame, train_keys: Sequence[str]) -> dict[int, list[tuple[str, int]]]:
    """Candidate table -> eval row -> [(train key, Hamming)], rows ascending, nearest pHash first."""
    c = c.sort_values(["row", "hamming"], kind="stable")
    out: dict[int, list[tuple[str, int]]] = {}
    for i, j, d in zip(c["row"].tolist(), c["train"].tolist(), c["hamming"].tolist()):
        out.setdefault(i, []).append((train_keys[j], d))
    return out


def _review_pairs(c: pd.DataFrame, keys: Sequence[str], threshold: float, n: int) -> list[tuple[int, str, float, bool]]:
    """The pairs nearest the threshold on both sides (each eval row's best candidate): what a person checks."""
    if c.empty or n <= 0:
        return []
    best = c.sort_values("residual", kind="stable").drop_duplicates("row")
    hit, miss = best[best["residual"] <= threshold], best[best["residual"] > threshold]
    n_miss = min(len(miss), max(n // 3, n - len(hit)))
    shown = pd.concat([hit.tail(n - n_miss), miss.head(n_miss)])
    rows = zip(shown["row"], shown["train"], shown["residual"])
    return [(int(r), keys[int(j)], float(s), bool(s <= threshold)) for r, j, s in rows]


def audit_dataset(
    train_keys: Sequence[str],
    train_bits: np.ndarray,
    ev: EvalImages,
    cfg: AuditConfig,
    train_vecs: np.ndarray | None = None,
    train_thumbs: np.ndarray | None = None,
) -> DatasetOverlap:
    """Overlap of one eval dataset with the training set, and the split statistics (no Bonferroni yet)."""
    t = cfg.threshold_for(ev.name)
    vecs = train_vecs if cfg.use_embeddings else None
    if cfg.use_embeddings and train_vecs is None:
        raise ValueError("audit.use_embeddings is true but no training image descriptors were passed")
    if cfg.verify and train_thumbs is None:
        raise ValueError("audit.verify is true but no training thumbnails were passed")
    radius = cfg.hamming_threshold if cfg.verify else int(t)
    thumbs, vt = (train_thumbs, t) if cfg.verify else (None, None)
    counts: dict = {}
    c = overlap_candidates(train_bits, ev, radius, vecs, cfg.embedding_threshold, cfg.knn, thumbs, vt, counts,
                           cfg.verify_method, (cfg.orb_threshold, cfg.orb_min_inliers), cfg.ecc_threshold,
                           cfg.crop_queries)  # fmt: skip
    closest: list[tuple[int, str, float, bool]] = []
    if cfg.verify:
        closest = _review_pairs(c, train_keys, t, cfg.html_pairs)
        c = c[c["residual"] <= t]
    found = {i: [key for key, _ in v] for i, v in _by_row(c, train_keys).items()}
    flags = np.zeros(len(ev.images), bool)
    flags[list(found)] = True
    correct = ev.correct if ev.correct is not None else np.zeros(len(ev.images), bool)
    st = split_stats(correct.tolist(), flags.tolist(), cfg.confidence)
    if ev.correct is None:  # retrieval or not evaluated: overlap only
        st = SplitStats(st.n_all, st.n_clean, st.n_overlap, 0, 0, None, None, None, None, None, None, None)
    shifted = None if st.all_minus_clean is None else abs(st.all_minus_clean) > cfg.shift_threshold
    rate = flags.mean() if len(flags) else 0.0
    return DatasetOverlap(ev.name, t, rate, st, None, shifted, sorted(found), found, closest, counts)


def overlap_audit(
    train_keys: Sequence[str],
    train_phash: Sequence[str],
    evals: Sequence[EvalImages],
    cfg: AuditConfig,
    train_vecs: np.ndarray | None = None,
    train_thumbs: np.ndarray | None = None,
) -> tuple[list[DatasetOverlap], dict]:
    """Audit every eval dataset, apply Bonferroni across the tests run, and build the summary line."""
    bits = hashes_to_bits(train_phash)
    rows = [audit_dataset(train_keys, bits, ev, cfg, train_vecs, train_thumbs) for ev in evals]
    sig = bonferroni([r.stats.p_value for r in rows], cfg.alpha)
    rows = [DatasetOverlap(**{**r.__dict__, "significant": s}) for r, s in zip(rows, sig)]
    rates = [r.overlap_rate for r in rows]
    summary = {
        "datasets": len(rows),
        "datasets_no_overlap": sum(r.stats.n_overlap == 0 for r in rows),
        "median_overlap": statistics.median(rates) if rates else 0.0,
        "mean_overlap": statistics.fmean(rates) if rates else 0.0,
        "shifted": sum(bool(r.shifted) for r in rows),
        "significant": sum(bool(r.significant) for r in rows),
        "tests": sum(r.stats.p_value is not None for r in rows),
        "bonferroni_alpha": cfg.alpha / max(1, sum(r.stats.p_value is not None for r in rows)),
    }
    summary["line"] = (
        f"{summary['datasets_no_overlap']} of {len(rows)} datasets have no detected overlap; median overlap "
        f"{100 * summary['median_overlap']:.1f}%, mean {100 * summary['mean_overlap']:.1f}%; "
        f"{summary['shifted']} shifted by more than {100 * cfg.shift_threshold:.1f} points, "
        f"{summary['significant']} significantly (Bonferroni, alpha={cfg.alpha})"
    )
    return rows, summary


def row_dict(r: DatasetOverlap) -> dict:
    """One dataset's flat record for overlap.json."""
    return {"dataset": r.dataset, "threshold": r.threshold, "overlap_rate": r.overlap_rate, **asdict(r.stats),
            "significant": r.significant, "shifted": r.shifted, "candidates": r.diagnostics.get("candidates"),
            "capped_images": r.diagnostics.get("capped")}  # fmt: skip


def gate(rows: Sequence[DatasetOverlap], cfg: AuditConfig, duplicate_rate: float | None = None) -> tuple[bool, str]:
    """Pass unless an overlap rate or the training duplicate rate exceeds its configured maximum."""
    bad = [
        f"{r.dataset} overlap {r.overlap_rate:.3f} > {cfg.max_overlap_rate}"
        for r in rows
        if r.overlap_rate > cfg.max_overlap_rate
    ]
    if duplicate_rate is not None and duplicate_rate > cfg.max_duplicate_rate:
        bad.append(f"training duplicate rate {duplicate_rate:.3f} > {cfg.max_duplicate_rate}")
    return (not bad, "; ".join(bad) or "audit thresholds met")


# ----------------------------------------------------------------------------- HTML
def _png64(img: Image.Image, size: int = 96) -> str:
    from components.report.html import data_uri

    return data_uri(img.resize((size, size), Image.Resampling.NEAREST))


def closest_pairs(
    train_keys: Sequence[str], train_phash: Sequence[str], ev: EvalImages, n: int, threshold: float
) -> list[tuple[int, str, float, bool]]:
    """Without verification: the `n` (eval row, train key, Hamming, counted) pairs of smallest pHash distance."""
    bits = hashes_to_bits(train_phash)
    q = hashes_to_bits(image_phash(img) for img in ev.images)
    d, i = nearest(bits, q, 1)
    order = np.argsort(d[:, 0], kind="stable")[:n]
    return [(int(r), train_keys[int(i[r, 0])], float(d[r, 0]), bool(d[r, 0] <= threshold)) for r in order]


def render_html(rows: Sequence[DatasetOverlap], summary: Mapping, pairs: Mapping[str, list], evals: Mapping[str, EvalImages],
                train_images: Mapping[str, Image.Image]) -> str:  # fmt: skip
    """One page: the table (one row per dataset), the summary line, then closest pairs side by side per dataset."""
    from components.report.html import render

    cols = ["dataset", "threshold", "n_all", "n_overlap", "overlap_rate", "acc_all", "acc_clean", "acc_overlap",
            "all_minus_clean", "p_value", "ci_low", "ci_high", "significant"]  # fmt: skip
    table = [{c: row_dict(r)[c] for c in cols} for r in rows]
    shown = [
        {"dataset": r.dataset, "threshold": r.threshold, "pairs": [
            {"eval_png": _png64(evals[r.dataset].images[row]),
             "train_png": _png64(train_images[key]) if key in train_images else "",
             "eval_ref": evals[r.dataset].refs[row], "train_key": key, "score": dist, "counted": counted}
            for row, key, dist, counted in pairs.get(r.dataset, [])]}
        for r in rows
    ]  # fmt: skip
    return render("overlap.html", title="train/eval overlap audit", summary=summary, rows=table, pairs=shown)


def run_overlap(
    train_keys: Sequence[str],
    train_phash: Sequence[str],
    evals: Sequence[EvalImages],
    cfg: AuditConfig,
    out_dir: str | Path,
    load_train_images: ImageLoader | None = None,
    train_vecs: np.ndarray | None = None,
    train_thumbs: np.ndarray | None = None,
) -> OverlapResult:
    """Audit, then write overlap.json, overlap.html."""
    t0 = time.perf_counter()
    rows, summary = overlap_audit(train_keys, train_phash, evals, cfg, train_vecs, train_thumbs)
    if cfg.verify:
        pairs = {r.dataset: r.closest for r in rows}
    else:
        pairs = {ev.name: closest_pairs(train_keys, train_phash, ev, cfg.html_pairs, cfg.threshold_for(ev.name)) for ev in evals}
    needed = sorted({k for v in pairs.values() for _, k, _, _ in v})
    train_images = load_train_images(needed) if load_train_images else {}
    out = str(out_dir).rstrip("/")  # a local path or any fsspec URL
    doc = json_safe({
        "summary": summary,
        "datasets": [row_dict(r) for r in rows],
        "overlap": {r.dataset: {evals[n].refs[i]: r.matches[i] for i in r.overlap_rows}
                    for n, r in enumerate(rows)},
        "config": asdict(cfg),
        "seconds": round(time.perf_counter() - t0, 3),
    })  # fmt: skip
    write_json(f"{out}/overlap.json", doc)
    write_atomic(f"{out}/overlap.html", render_html(rows, summary, pairs, {e.name: e for e in evals}, train_images))
    return OverlapResult(rows, summary, doc)


__all__ = [
    "EvalImages", "OverlapResult", "audit_dataset", "find_overlap", "gate", "json", "load_eval_images", "load_eval_sets",
    "overlap_audit", "overlap_candidates", "run_overlap",
]  # fmt: skip
