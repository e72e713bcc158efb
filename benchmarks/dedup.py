"""Benchmark: near-duplicate search cost and recall at 10k and 100k images, ours vs brute-force peers.

Run from the project root:
    python benchmarks/dedup.py --sizes 10000 100000
Renders N images (`tests/components/audit/synthetic.py`: smooth colour fields with three discs) plus 1%
planted copies made by the data synth's transforms (5/4 resize, JPEG q70, 1/16 crop, colour jitter, cycled),
and computes each image's pHash and 192-d descriptor, as ingest and the dedup stage do.
Ours: `components.audit.dedup.find_near_pairs`, the dedup stage's candidate search with the default params
(pHash Hamming <= 4 by FAISS multi-index hashing, OR descriptor cosine >= 0.8 among the 10 nearest by PCA +
inverted file), forced onto the large-data indexes at every size so the ratio is a scaling law; also each
path alone. Peers: brute-force pairwise pHash Hamming with numpy (what a small script, or imagededup's
PHash, does), and exact descriptor k-NN with FAISS `IndexFlatIP` (brute force, BLAS); above `--peer-max`
images both are timed on that many query rows and scaled linearly in the rows (estimate).
The time of a search is the median of `--repeats` runs. Prints a JSON summary; numbers go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages, not an installed copy

import faiss

from components.audit import hashing
from components.audit.dedup import find_near_pairs

POP = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def rendered_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, set[tuple[int, int]], float]:
    """(codes (M, 8) uint8, descriptors (M, 192), planted pairs, hashing seconds); M = n + n/100.

    Row n + t is a transformed copy of row 100 t. Hashing seconds cover pHash + descriptor only, not rendering.
    """
    from tests.components.audit.synthetic import TRANSFORMS, base_image, transform

    rng = np.random.default_rng(seed)
    imgs, copies = [], []
    for i in range(n):
        img = base_image(rng)
        imgs.append(img)
        if i % 100 == 0 and len(copies) < n // 100:
            copies.append(transform(img, TRANSFORMS[len(copies) % 4], rng))
    t0 = time.perf_counter()
    hexes = [hashing.image_phash(im) for im in imgs + copies]
    vecs = np.stack([hashing.descriptor(im) for im in imgs + copies]).astype(np.float32)
    seconds = time.perf_counter() - t0
    return hashing.hashes_to_bits(hexes), vecs, {(100 * t, n + t) for t in range(len(copies))}, seconds


def brute_force_pairs(codes: np.ndarray, threshold: int, rows: int | None = None, chunk: int = 256) -> set[tuple[int, int]]:
    """All pairs i < j with Hamming <= threshold, by popcount over every pair (O(N^2)); only the first `rows` queries if set."""
    out = set()
    for a in range(0, rows or len(codes), chunk):
        block = codes[a : a + chunk]  # (C, 8)
        d = POP[np.bitwise_xor(block[:, None, :], codes[None, :, :])].sum(axis=2, dtype=np.int32)  # (C, N)
        i, j = np.nonzero(d <= threshold)
        i = i + a
        keep = i < j
        out.update(zip(i[keep].tolist(), j[keep].tolist()))
    return out


def flat_knn_pairs(vecs: np.ndarray, k: int, min_cos: float, rows: int | None = None) -> set[tuple[int, int]]:
    """Exact k-NN (FAISS IndexFlatIP, O(N^2 D) by BLAS): pairs i < j among the k nearest with cosine >= min_cos."""
    index = faiss.IndexFlatIP(vecs.shape[1])
    index.add(vecs)
    sims, ids = index.search(vecs[: rows or len(vecs)], k + 1)
    qi, col = np.nonzero(sims >= min_cos)
    a, b = np.minimum(qi, ids[qi, col]), np.maximum(qi, ids[qi, col])
    return set(zip(a[a < b].tolist(), b[a < b].tolist()))


def score(found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> tuple[float, float]:
    """(recall, precision) of found pairs against the planted ones."""
    tp = len(found & truth)
    return tp / max(len(truth), 1), tp / max(len(found), 1)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """(median seconds over `repeats` runs, last result)."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run_size(n: int, threshold: int, min_cos: float, k: int, peer_max: int, repeats: int, seed: int) -> dict:
    codes, vecs, truth, hash_s = rendered_set(n, seed)
    m = len(codes)
    row: dict = {"n": m, "hashing_s": hash_s, "hashing_images_per_s": m / hash_s}
    flat_max = hashing.FLAT_MAX
    hashing.FLAT_MAX = 0  # the large-data indexes at every size, so the ratio is a scaling law
    try:
        s, (i, j, _) = timed(lambda: find_near_pairs(codes, threshold, vecs, min_cos, k), repeats)
        row["ours_s"], row["ours_images_per_s"] = s, m / s
        row["ours_recall"], row["ours_precision"] = score(set(zip(i.tolist(), j.tolist())), truth)
        s, _ = timed(lambda: hashing.range_pairs(hashing.build_index(codes, threshold), codes, threshold), repeats)
        row["ours_phash_only_s"] = s
        s, _ = timed(lambda: hashing.vector_pairs(hashing.build_vector_index(vecs), vecs, k + 1, min_cos), repeats)
        row["ours_descriptor_only_s"] = s
    finally:
        hashing.FLAT_MAX = flat_max
    rows = None if m <= peer_max else peer_max  # O(N^2): time `peer_max` query rows, scale linearly in the rows
    scale = 1.0 if rows is None else m / peer_max
    t0 = time.perf_counter()
    peer = brute_force_pairs(codes, threshold, rows=rows)
    row["peer_phash_bruteforce_s"] = (time.perf_counter() - t0) * scale
    t0 = time.perf_counter()
    peer_knn = flat_knn_pairs(vecs, k, min_cos, rows=rows)
    row["peer_descriptor_flat_s"] = (time.perf_counter() - t0) * scale
    if rows is None:
        row["peer_phash_bruteforce_recall"], row["peer_phash_bruteforce_precision"] = score(peer, truth)
        row["peer_descriptor_flat_recall"], row["peer_descriptor_flat_precision"] = score(peer_knn, truth)
    else:
        row["peers_estimated_from_rows"] = peer_max
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--threshold", type=int, default=4)
    p.add_argument("--min-cos", type=float, default=0.8)
    p.add_argument("--knn", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--peer-max",
        type=int,
        default=10_100,
        help="above this many images, time the O(N^2) peers on this many query rows and extrapolate",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rows = [run_size(n, args.threshold, args.min_cos, args.knn, args.peer_max, args.repeats, args.seed) for n in args.sizes]
    out = {"machine": f"{platform.machine()} {platform.processor()} python {platform.python_version()}", "rows": rows}
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        out["data_ratio"] = b["n"] / a["n"]
        for key in a:
            if key.endswith("_s") and not key.endswith("_per_s") and key in b:
                out[f"time_ratio/{key}"] = b[key] / a[key]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
