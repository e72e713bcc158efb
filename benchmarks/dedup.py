"""Benchmark: near-duplicate search cost and recall at 10k and 100k images, ours vs brute-force pairwise Hamming.

Run from the project root:
    python benchmarks/dedup.py --sizes 10000 100000
Generates the data itself: N random 64-bit pHashes plus 1% planted copies with 0..threshold bits
flipped (what a resize / JPEG / jitter does to a pHash), and the 192-d descriptors of N rendered images
(`tests/components/audit/synthetic.py`: smooth colour fields with discs) plus 1% planted copies made by the
data synth's transforms (resize, JPEG, 1/16 crop, colour jitter).
Ours: `components.audit.dedup.find_near_pairs` (FAISS multi-index hashing for the pHash range search,
an inverted file with sampled centroids for descriptor k-NN). Peer: brute-force pairwise Hamming with
numpy (chunked popcount over all pairs), the method a small script would use. Also measures hashing
throughput on real 64x64 images.
Prints a JSON summary; numbers go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages, not an installed copy

from components.audit import hashing
from components.audit.dedup import find_near_pairs

POP = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def planted_hashes(n: int, threshold: int, rng: np.random.Generator) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """(n + n/100, 8) uint8 codes; the last n/100 are copies of random rows with 0..threshold bits flipped."""
    base = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    n_dup = n // 100
    src = rng.choice(n, n_dup, replace=False)
    bits = np.unpackbits(base[src], axis=1)
    for row in bits:
        flip = rng.choice(64, int(rng.integers(0, threshold + 1)), replace=False)
        row[flip] ^= 1
    codes = np.concatenate([base, np.packbits(bits, axis=1)])
    return codes, {(int(s), n + t) for t, s in enumerate(src)}


def planted_vectors(n: int, rng: np.random.Generator) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """(n + n/100, 192) descriptors of rendered images; the last n/100 are transformed copies of every 100th image."""
    from tests.components.audit.synthetic import TRANSFORMS, base_image, transform

    vecs, dups = [], []
    for i in range(n):
        img = base_image(rng)
        vecs.append(hashing.descriptor(img))
        if i % 100 == 0 and len(dups) < n // 100:
            dups.append(hashing.descriptor(transform(img, TRANSFORMS[len(dups) % 4], rng)))
    x = np.stack(vecs + dups).astype(np.float32)
    return x, {(100 * t, n + t) for t in range(len(dups))}


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


def score(found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> tuple[float, float]:
    """(recall, precision) of found pairs against the planted ones."""
    tp = len(found & truth)
    return tp / max(len(truth), 1), tp / max(len(found), 1)


def run_size(n: int, threshold: int, min_cos: float, peer_max: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    codes, truth = planted_hashes(n, threshold, rng)
    row: dict = {"n": len(codes)}
    flat_max = hashing.FLAT_MAX
    hashing.FLAT_MAX = 0  # same index kind (multi-index hashing) at every size, so the ratio is a scaling law
    t0 = time.perf_counter()
    i, j, _ = find_near_pairs(codes, threshold)
    row["ours_phash_s"] = time.perf_counter() - t0
    hashing.FLAT_MAX = flat_max
    row["ours_phash_images_per_s"] = len(codes) / row["ours_phash_s"]
    found = set(zip(i.tolist(), j.tolist()))
    row["ours_phash_recall"], row["ours_phash_precision"] = score(found, truth)
    t0 = time.perf_counter()
    if len(codes) <= peer_max:
        peer = brute_force_pairs(codes, threshold)
        row["peer_bruteforce_s"] = time.perf_counter() - t0
        row["peer_bruteforce_recall"], row["peer_bruteforce_precision"] = score(peer, truth)
    else:  # O(N^2): time `peer_max` query rows against all N and scale linearly in the rows (estimate)
        brute_force_pairs(codes, threshold, rows=peer_max)
        row["peer_bruteforce_s"] = (time.perf_counter() - t0) * len(codes) / peer_max
        row["peer_bruteforce_estimated_from_rows"] = peer_max
    row["peer_bruteforce_images_per_s"] = len(codes) / row["peer_bruteforce_s"]
    vecs, vtruth = planted_vectors(n, rng)
    # random codes: pHash at radius 0 finds (almost) nothing. Not arange: codes differing only in low bits share
    # two of the three 21-bit substrings, which makes multi-index hashing scan every code (quadratic)
    dummy = rng.integers(0, 256, (len(vecs), 8), dtype=np.uint8)
    hashing.FLAT_MAX = 0  # the inverted file at every size
    t0 = time.perf_counter()
    i, j, _ = find_near_pairs(dummy, 0, vecs, min_cos, k=10)
    row["ours_embed_s"] = time.perf_counter() - t0
    hashing.FLAT_MAX = flat_max
    row["ours_embed_images_per_s"] = len(vecs) / row["ours_embed_s"]
    row["ours_embed_recall"], row["ours_embed_precision"] = score(set(zip(i.tolist(), j.tolist())), vtruth)
    return row


def hashing_throughput(n: int = 500) -> float:
    """Images/s of pHash + descriptor on decoded 64x64 images (the per-image, linear part)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(n)]
    t0 = time.perf_counter()
    for im in imgs:
        hashing.image_phash(im)
        hashing.descriptor(im)
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--threshold", type=int, default=4)
    p.add_argument("--min-cos", type=float, default=0.8)
    p.add_argument(
        "--peer-max",
        type=int,
        default=20_000,
        help="above this many images, time the O(N^2) peer on this many query rows and extrapolate",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rows = [run_size(n, args.threshold, args.min_cos, args.peer_max, args.seed) for n in args.sizes]
    out = {"machine": f"{platform.machine()} {platform.processor()} python {platform.python_version()}", "rows": rows}
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        data = b["n"] / a["n"]
        out["data_ratio"] = data
        for k in ("ours_phash_s", "ours_embed_s", "peer_bruteforce_s"):
            if k in a and k in b:
                out[f"time_ratio/{k}"] = b[k] / a[k]
    out["hashing_images_per_s"] = hashing_throughput()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
