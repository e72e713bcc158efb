"""Perceptual hashes and near-duplicate search over them with a FAISS binary index (never all pairs)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import faiss
import numpy as np
from PIL import Image, ImageFilter

from components.data.checks import phash

# below this many indexed hashes an exact flat scan is cheaper than building hash tables
FLAT_MAX = 20_000


def hashes_to_bits(hexes: Iterable[str]) -> np.ndarray:
    """16-hex-char phashes -> (N, 8) uint8, the packed layout FAISS binary indexes take."""
    hexes = list(hexes)
    if not hexes:
        return np.zeros((0, 8), np.uint8)
    return np.frombuffer(bytes.fromhex("".join(hexes)), np.uint8).reshape(len(hexes), 8).copy()


def image_phash(img: Image.Image) -> str:
    """The same 64-bit pHash ingest stores in metadata.parquet."""
    return phash(img)


def build_index(bits: np.ndarray, radius: int) -> faiss.IndexBinary:
    """A binary index over (N, 8) codes that answers Hamming range queries <= `radius` exactly.

    Small sets: a flat scan. Large sets: multi-index hashing with 3 substrings of 21 bits, probing
    every bucket within `radius // 3` flipped bits: by pigeonhole one substring of a code within
    `radius` differs in at most `radius // 3` bits, so recall stays exact, while each query touches
    a fixed number of nearly empty buckets (2^21 of them): cost grows ~linearly with N. Radii above
    8 would probe too many buckets and fall back to the flat scan.
    """
    nflip = radius // 3
    if len(bits) <= FLAT_MAX or nflip > 2:
        index = faiss.IndexBinaryFlat(64)
    else:
        index = faiss.IndexBinaryMultiHash(64, 3, 21)
        index.nflip = nflip
    index.add(bits)
    return index


def range_pairs(index: faiss.IndexBinary, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (query i, indexed j, distance d) with Hamming d <= radius, as three int arrays."""
    if len(queries) == 0 or index.ntotal == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    lims, dist, ids = index.range_search(queries, radius + 1)  # FAISS radius is strict (<)
    qi = np.repeat(np.arange(len(queries)), np.diff(lims.astype(np.int64)))
    return qi.astype(np.int64), ids.astype(np.int64), dist.astype(np.int64)


def nearest(bits: np.ndarray, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(distances, ids), each (Q, k): the k nearest of `bits` to each query (flat scan; for the review page)."""
    index = faiss.IndexBinaryFlat(64)
    index.add(bits)
    d, i = index.search(queries, min(k, len(bits)))
    return d.astype(np.int64), i.astype(np.int64)


def clusters(n: int, pairs_i: Sequence[int], pairs_j: Sequence[int]) -> np.ndarray:
    """Connected components of the duplicate graph: (N,) cluster id = smallest member index (union-find)."""
    parent = np.arange(n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(pairs_i, pairs_j):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(a) for a in range(n)])


def descriptor(img: Image.Image, size: int = 8, blur: float = 1.5) -> np.ndarray:
    """(3*size*size,) unit vector: a blurred colour thumbnail standardised per channel.

    Blur + 8x8 makes a 1/16 crop move content by half a cell (pHash moves up to ~18 bits on such crops);
    per-channel standardisation cancels colour jitter (gain and offset per channel).
    """
    img = img.convert("RGB").resize((64, 64), Image.Resampling.BOX).filter(ImageFilter.GaussianBlur(blur))
    a = np.asarray(img.resize((size, size), Image.Resampling.BOX), np.float32).reshape(-1, 3)
    a = (a - a.mean(0)) / (a.std(0) + 8.0)
    v = a.reshape(-1)
    return v / (np.linalg.norm(v) + 1e-6)


def build_vector_index(vecs: np.ndarray, per_list: int = 64, nprobe: int = 16, seed: int = 0) -> faiss.Index:
    """Inner-product index over unit vectors: exact flat scan up to FLAT_MAX, else an inverted file (cost ~linear).

    Large sets: `N / per_list` centroids drawn from the data itself (no k-means, whose cost grows with the
    square of the list count), found through a small HNSW graph; each query scans `nprobe` lists of
    ~`per_list` vectors, so the work per query stays constant as N grows. HNSW over all N vectors was
    tried first: 30-39x the time for 10x the data on this CPU (the graph stops fitting in cache).
    """
    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    n, d = vecs.shape
    if n <= FLAT_MAX:
        index = faiss.IndexFlatIP(d)
        index.add(vecs)
        return index
    nlist = max(1, n // per_list)
    quantizer = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    quantizer.hnsw.efSearch = 64
    quantizer.add(vecs[np.random.default_rng(seed).choice(n, nlist, replace=False)])
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.nprobe = nprobe
    index.add(vecs)  # (faiss's Python wrapper keeps the quantizer alive as long as the index)
    return index


def vector_pairs(index: faiss.Index, queries: np.ndarray, k: int, min_cos: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query i, indexed j, cosine) for the k nearest neighbours of each query with cosine >= min_cos."""
    if len(queries) == 0 or index.ntotal == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    sims, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, index.ntotal))
    qi, col = np.nonzero((sims >= min_cos) & (ids >= 0))
    return qi.astype(np.int64), ids[qi, col].astype(np.int64), sims[qi, col]


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distance of two (P, 8) uint8 code arrays."""
    return np.unpackbits(np.bitwise_xor(a, b), axis=1).sum(axis=1).astype(np.int64)
