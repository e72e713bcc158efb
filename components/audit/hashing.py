"""Perceptual hashes and image descriptors, and near-duplicate search over them (never all pairs)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import torch
from faiss.contrib.clustering import two_level_clustering
from PIL import Image, ImageFilter

from components.data.checks import phash

# below this many indexed hashes an exact flat scan is cheaper than building hash tables
FLAT_MAX = 20_000
# vectors drawn to fit the PCA of the descriptor index (a fixed cost, whatever N)
PCA_SAMPLE = 10_000
# pairs per block when computing exact cosines (one gather of ~100k pairs x 192 floats took 15x longer than in blocks)
COS_CHUNK = 8192
# inverted lists found by a flat scan of their centroids up to this many lists, by an HNSW graph beyond
FLAT_QUANTIZER_MAX = 4096


def hashes_to_bits(hexes: Iterable[str]) -> np.ndarray:
    """16-hex-char phashes -> (N, 8) uint8, the packed layout FAISS binary indexes take."""
    hexes = list(hexes)
    if not hexes:
        return np.zeros((0, 8), np.uint8)
    return np.frombuffer(bytes.fromhex("".join(hexes)), np.uint8).reshape(len(hexes), 8).copy()


def image_phash(img: Image.Image) -> str:
    """The same 64-bit pHash ingest stores in metadata.parquet."""
    return phash(img)


class HammingIndex:
    """Exact Hamming range search over 64-bit codes by multi-index hashing, with tables sized to the data.

    Pigeonhole: split the 64 bits into 3 substrings; a code within `radius` of a query differs from it
    in at most `radius // 3` bits of one substring, hence in at most that many bits of that substring's
    top `b` bits. Each table maps those `b` key bits to the codes holding them (a counting sort: `order`
    and `starts`, CSR layout); a query probes every key within `radius // 3` flipped bits in each table
    and the candidates are checked with the full Hamming distance, so the result is exact.

    Hand-written because FAISS's `IndexBinaryMultiHash` (used before) keeps fixed 2^21-bucket hash maps of
    small vectors: on this CPU its build + search took 24-34x the time for 10x the codes
    (BENCHMARKS.md). Here `b = log2(N) + 2`, so a table has ~4 slots per code whatever N: the candidates
    per query and the table's share of cache stay about constant, and queries run in fixed-size numpy
    chunks. Beyond ~2^20 codes the keys reach the full substring width and stop growing: random collisions
    per query then grow with N again, as in FAISS.
    """

    def __init__(self, bits: np.ndarray, radius: int, chunk: int = 8192):
        self.codes = _as_u64(bits)  # (N,) uint64
        self.radius, self.chunk = radius, chunk
        nflip = radius // 3
        n = len(self.codes)
        b_max = max(8, int(np.ceil(np.log2(max(n, 2)))) + 2)
        self.tables: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]] = []
        shift = 0
        for w in (22, 21, 21):  # substring widths, low bits first
            b = min(w, b_max)
            key_shift = shift + w - b  # the substring's top b bits
            key = _key(self.codes, key_shift, b)  # (N,)
            order = np.argsort(key, kind="stable").astype(np.int32)  # codes grouped by key
            starts = np.zeros((1 << b) + 1, np.int32)  # codes with key k: order[starts[k]:starts[k + 1]]
            np.cumsum(np.bincount(key, minlength=1 << b), out=starts[1:])
            flips = np.array(
                [sum(1 << i for i in c) for f in range(nflip + 1) for c in itertools.combinations(range(b), f)], np.int64
            )  # (P,) every key within nflip flipped bits
            self.tables.append((key_shift, b, order, starts, flips))
            shift += w

    @property
    def ntotal(self) -> int:
        """Number of indexed codes."""
        return len(self.codes)

    def range_pairs(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query i, indexed j, distance d) for every pair with Hamming d <= radius."""
        qv = _as_u64(queries)  # (Q,)
        n = np.int64(len(self.codes))
        out: list[np.ndarray] = []
        for a in range(0, len(qv), self.chunk):
            qc = qv[a : a + self.chunk]  # (C,)
            qs, cs = [], []
            for key_shift, b, order, starts, flips in self.tables:
                probes = (_key(qc, key_shift, b)[:, None] ^ flips[None, :]).reshape(-1)  # (C * P,)
                lo = starts[probes]
                cnt = starts[probes + 1] - lo
                hit = np.flatnonzero(cnt)
                cnt, lo = cnt[hit].astype(np.int64), lo[hit].astype(np.int64)
                within = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)  # 0..cnt-1 per probe
                qs.append(np.repeat(hit // len(flips), cnt))
                cs.append(order[np.repeat(lo, cnt) + within].astype(np.int64))
            qi, cj = np.concatenate(qs), np.concatenate(cs)  # candidates, with repeats across tables
            keep = _popcount(qc[qi] ^ self.codes[cj]) <= self.radius
            out.append(unique_ints(qi[keep] * n + cj[keep]) + a * n)  # pair id = query * N + code
        pid = np.concatenate(out) if out else np.zeros(0, np.int64)
        qi, cj = pid // n, pid % n
        return qi, cj, _popcount(qv[qi] ^ self.codes[cj])


def unique_ints(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a 1-d int array (np.unique took 14x as long as a sort on 1M int64, numpy 2.4)."""
    s = np.sort(x)
    return s[np.concatenate([[True], s[1:] != s[:-1]])] if len(s) else s


def unique_pairs(i: np.ndarray, j: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (i, j) pairs sorted by i then j, for 0 <= j < n, as two int64 arrays."""
    pid = unique_ints(np.asarray(i, np.int64) * np.int64(n) + np.asarray(j, np.int64))
    return pid // n, pid % n


def _as_u64(bits: np.ndarray) -> np.ndarray:
    """(N, 8) uint8 packed codes (FAISS layout, first byte = high bits) -> (N,) uint64."""
    return np.ascontiguousarray(bits, dtype=np.uint8).view(">u8").reshape(-1).astype(np.uint64)


def _key(codes: np.ndarray, shift: int, b: int) -> np.ndarray:
    """(N,) int64: bits [shift, shift + b) of each uint64 code."""
    return ((codes >> np.uint64(shift)) & np.uint64((1 << b) - 1)).astype(np.int64)


_POP8 = np.array([bin(i).count("1") for i in range(256)], np.int64)


def _popcount(x: np.ndarray) -> np.ndarray:
    """(N,) int64 set bits of each uint64 (a byte table: np.bitwise_count needs numpy >= 2)."""
    return _POP8[np.ascontiguousarray(x, dtype=np.uint64).view(np.uint8).reshape(-1, 8)].sum(axis=1)


def build_index(bits: np.ndarray, radius: int) -> faiss.IndexBinary | HammingIndex:
    """An index over (N, 8) codes that answers Hamming range queries <= `radius` exactly.

    Small sets: a FAISS flat scan. Large sets: multi-index hashing (HammingIndex), cost ~linear in N.
    Radii above 8 would probe too many keys (3 flipped bits of ~20) and fall back to the flat scan.
    """
    if len(bits) <= FLAT_MAX or radius // 3 > 2:
        index = faiss.IndexBinaryFlat(64)
        index.add(np.ascontiguousarray(bits, dtype=np.uint8))
        return index
    return HammingIndex(bits, radius)


def range_pairs(
    index: faiss.IndexBinary | HammingIndex, queries: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (query i, indexed j, distance d) with Hamming d <= radius, as three int arrays."""
    if len(queries) == 0 or index.ntotal == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    if isinstance(index, HammingIndex):
        if radius != index.radius:
            raise ValueError(f"HammingIndex built for radius {index.radius}, queried with {radius}")
        return index.range_pairs(queries)
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


@dataclass(frozen=True)
class VectorIndex:
    """A k-NN index over unit vectors, searched in Euclidean distance, and the full vectors for exact cosines."""

    index: faiss.Index  # flat L2 on the full vectors, or PCA -> inverted file (see build_vector_index)
    vecs: np.ndarray  # (N, D) float32 unit vectors, in index order

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors."""
        return int(self.index.ntotal)


def build_vector_index(vecs: np.ndarray, per_list: int = 128, nprobe: int = 8, dim: int = 32, seed: int = 0) -> VectorIndex:
    """k-NN index over unit vectors: an exact flat scan up to FLAT_MAX, else PCA + a balanced inverted file.

    Large sets (cost ~linear in N): vectors are projected by PCA to `dim` dimensions (trained on a fixed-size
    sample), cut into `N / per_list` lists by two-level k-means (faiss.contrib.clustering, sqrt(nlist) coarse
    clusters each split again, so training cost stays near-linear), found through a flat L2 quantizer (an HNSW
    graph above 4096 lists); each query scans `nprobe` lists of ~`per_list` short vectors, so the work per
    query stays constant and the lists stay cache-sized. The projection only shortens distances
    (|P(x - y)| <= |x - y|), so a cosine threshold applied to the projected distance loses no pair; found pairs
    get their exact cosine from the full vectors (vector_pairs). Measured before this design, on the same
    data (BENCHMARKS.md): HNSW over all vectors 30-39x the time for 10x the data; an inverted file on centroids
    sampled from the data 28x (clustered data made its lists unbalanced: a point's list held 3x the mean).
    """
    vecs = np.ascontiguousarray(vecs, dtype=np.float32)
    n, d = vecs.shape
    if n <= FLAT_MAX or d <= dim:
        index = faiss.IndexFlatL2(d)
        index.add(vecs)
        return VectorIndex(index, vecs)
    rng = np.random.default_rng(seed)
    pca = faiss.PCAMatrix(d, dim)
    pca.train(vecs[rng.choice(n, min(n, PCA_SAMPLE), replace=False)])
    low = pca.apply(vecs)
    nlist = max(1, n // per_list)
    centroids, _ = two_level_clustering(
        low, max(1, round(nlist**0.5)), nlist, clustering_niter=10, seed=seed, min_points_per_centroid=1
    )
    if nlist <= FLAT_QUANTIZER_MAX:  # a flat scan of the centroids is cheaper than a graph walk at this size
        quantizer = faiss.IndexFlatL2(dim)
    else:
        quantizer = faiss.IndexHNSWFlat(dim, 32)
        quantizer.hnsw.efSearch = 64
    quantizer.add(centroids)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_L2)
    ivf.nprobe = nprobe
    index = faiss.IndexPreTransform(pca, ivf)
    index.add(vecs)  # (faiss's Python wrapper keeps the quantizer and the PCA alive as long as the index)
    return VectorIndex(index, vecs)


def vector_pairs(
    index: VectorIndex, queries: np.ndarray, k: int, min_cos: float, self_join: bool = False, counts: dict | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query i, indexed j, cosine): every neighbour of each unit-vector query with cosine >= min_cos, at most k.

    A range search with a cap: the k nearest are searched and those below the threshold dropped. `counts`, if
    given, gets "capped": the number of queries whose k-th neighbour still passed the threshold (the cap bound;
    they may have more neighbours in range than were kept, so raise `k` when it is not 0).
    `self_join`: the queries are the indexed vectors themselves, in order; each pair comes once, as i < j,
    whichever end found the other.
    """
    if len(queries) == 0 or index.ntotal == 0:
        if counts is not None:
            counts["capped"] = 0
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    dist, ids = index.index.search(queries, min(k, index.ntotal))  # squared L2: 2 - 2 cos for unit vectors
    within = (ids >= 0) & (dist <= 2.0 - 2.0 * min_cos + 1e-4)
    if counts is not None:
        counts["capped"] = int(within[:, -1].sum()) if k < index.ntotal else 0
    qi, col = np.nonzero(within)
    ids = ids[qi, col]
    if self_join:  # k-NN is not symmetric: keep a pair found from either end, once, without self-pairs
        qi, ids = unique_pairs(np.minimum(qi, ids), np.maximum(qi, ids), index.ntotal)
        qi, ids = qi[qi < ids], ids[qi < ids]
    cos = np.empty(len(qi), np.float32)
    for a in range(0, len(qi), COS_CHUNK):  # exact, on the full vectors; cache-sized gathers
        b = a + COS_CHUNK
        cos[a:b] = np.einsum("pd,pd->p", queries[qi[a:b]], index.vecs[ids[a:b]])
    keep = cos >= min_cos
    return qi[keep].astype(np.int64), ids[keep].astype(np.int64), cos[keep]


# ----------------------------------------------------------------------------- crop-hypothesis queries
# An eval image is also queried as each of these crops of itself (the whole frame, then crops keeping 90% and 80% of
# each side at 3 x 3 places, then full-width and full-height bands keeping 90% and 80% of the other side at 3 places:
# a crop that changes the aspect): a training copy that was cropped (corner strips, crops up to 25% of the area)
# matches the query of its crop far better than the whole frame (cosine 0.5-0.8 -> >= 0.9 on the real-image
# benchmark). The bands (2026-12-02): 5 of the 6 25% crops that no query found over 8 plantings at 9.5k matched only
# square crops at 0.59-0.88 and a band-shaped crop at 0.97-1.0.
CROP_BOXES: list[tuple[float, float, float, float]] = [(0.0, 0.0, 1.0, 1.0)] + [
    (float(x), float(y), float(x) + f, float(y) + f)
    for f in (0.9, 0.8)
    for y in np.linspace(0, 1 - f, 3)
    for x in np.linspace(0, 1 - f, 3)
]
N_SQUARE_BOXES = len(CROP_BOXES)  # the whole frame and the square crops; the bands follow
CROP_BOXES += [
    box
    for f in (0.9, 0.8)
    for t in np.linspace(0, 1 - f, 3)
    for box in ((0.0, float(t), 1.0, float(t) + f), (float(t), 0.0, float(t) + f, 1.0))
]
# a pair found by both a square crop and a band keeps the band (the box the verifier starts aligning from) only when its
# cosine is higher by this: ECC from a band box converged worse for 2 corner-strip copies that a square box found
# (8 plantings at 9.5k, 2026-12-02)
BAND_BOX_MARGIN = 0.02
# a crop hypothesis counts only at cosine >= embedding_threshold + this (the right crop of a true copy matches at
# >= 0.94 but for one 25% crop at 0.81; at 0.8 + 0.05 the 9.5k benchmark's candidates fall from 26.6k to 16.4k, one copy lost)
CROP_COS_MARGIN = 0.05
CENTRE_MARGIN = 1 / 6  # the centre descriptor leaves out this share of each side: where captions and logos sit
# overlay queries: a caption or logo over a corner or band of a copy (up to ~35% of its side) moves the whole-frame and
# centre descriptors past the threshold on low-texture images; the band on the other side of the frame is untouched.
# Each band of the query is searched among the same band of the training images, BAND_K nearest within the threshold.
# On the real-image benchmark at 9.5k (2026-12-01): 5 of the 5 overlay copies and 1 of the 2 25% crops that no other
# query reached, for 900 more candidates (+11%); BAND_K 5: the same copies for 1,599, 10: 3,349.
BAND_BOXES: list[tuple[float, float, float, float]] = [(0.0, 0.0, 1.0, 0.6), (0.0, 0.4, 1.0, 1.0)]
BAND_K = 3
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def centre_box(box: tuple[float, float, float, float], m: float = CENTRE_MARGIN) -> tuple[float, float, float, float]:
    """The centre of `box` without a margin of `m` of its width and height on each side."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return (x0 + m * w, y0 + m * h, x1 - m * w, y1 - m * h)


def blur_area(m: int, n: int, lo: float, hi: float, sigma: float) -> np.ndarray:
    """(m, n) linear map: Gaussian blur (sigma, source pixels) then area-average the span [lo, hi) into m cells."""
    x = np.arange(n)
    g = np.exp(-0.5 * ((x[:, None] - x[None]) / max(sigma, 1e-3)) ** 2)
    a = np.zeros((m, n))
    edges = np.linspace(lo, hi, m + 1)
    for o in range(m):
        for i in range(int(np.floor(edges[o])), min(n, int(np.ceil(edges[o + 1])))):
            a[o, i] = max(0.0, min(edges[o + 1], i + 1) - max(edges[o], i))
        a[o] /= a[o].sum()
    return a @ (g / g.sum(1, keepdims=True))


def box_descriptors(thumbs: np.ndarray, boxes: Sequence[tuple[float, float, float, float]], grey: bool = False,
                    size: int = 8, blur: float = 1.5, chunk: int = 256) -> np.ndarray:  # fmt: skip
    """(N, B, 3*size*size) float32: `descriptor` of each box of each (N, S, S, 3) uint8 thumbnail (grey: of its luma).

    The same blur-then-average and per-channel standardisation as `descriptor` (cosine >= 0.998 with it on the
    whole frame), as two small matrix products per box, so 31 crops of an image cost about one PIL descriptor.
    """
    n = thumbs.shape[1]
    ry = np.stack([blur_area(size, n, b[1] * n, b[3] * n, blur * (b[3] - b[1]) * n / 64) for b in boxes])  # (B, 8, S)
    rx = np.stack([blur_area(size, n, b[0] * n, b[2] * n, blur * (b[2] - b[0]) * n / 64) for b in boxes])
    ry, rx = torch.tensor(ry, dtype=torch.float32), torch.tensor(rx, dtype=torch.float32)
    out = np.zeros((len(thumbs), len(boxes), 3 * size * size), np.float32)
    with torch.no_grad():
        for s in range(0, len(thumbs), chunk):
            t = torch.from_numpy(np.ascontiguousarray(thumbs[s : s + chunk])).float()  # (C, S, S, 3)
            if grey:
                t = (t @ torch.from_numpy(_LUMA))[..., None].expand(-1, -1, -1, 3)
            v = torch.einsum("bys,cdst,bxt->cbyxd", ry, t.permute(0, 3, 1, 2), rx)  # (C, B, 8, 8, 3)
            v = v.reshape(len(t), len(boxes), size * size, 3)
            v = (v - v.mean(2, keepdim=True)) / (v.std(2, unbiased=False, keepdim=True) + 8.0)
            v = v.reshape(len(t), len(boxes), -1)
            out[s : s + chunk] = (v / (v.norm(dim=-1, keepdim=True) + 1e-6)).numpy()
    return out


def crop_query_pairs(
    train_vecs: np.ndarray, train_thumbs: np.ndarray, query_thumbs: np.ndarray, k: int, min_cos: float,
    counts: dict | None = None, per_query: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(query i, train j, box b, cosine): candidates by crop hypotheses, each pair once with its best-matching CROP_BOXES index.

    Two indexes over the training images: the whole-frame descriptors (`train_vecs`) and the centre descriptors
    (centre_box, from the thumbnails: a caption or logo in a corner hardly moves them). Each query image asks both
    with every box of CROP_BOXES, in colour and in grey (a grey copy matches the grey query exactly): 4 x 31
    range searches of at most k neighbours within `min_cos`. `counts` gets "capped" (queries at the cap, summed).
    `per_query`: keep at most this many pairs per query image, the best cosines (`counts["capped_total"]`: the query
    images that had more). Then overlay queries: each band of BAND_BOXES of each query image among the same band of
    the training images, BAND_K nearest within `min_cos` (`counts["band_pairs"]`: the pairs only they found, box 0).
    """
    boxes = CROP_BOXES
    centre = [centre_box(b) for b in boxes]
    idx_full = build_vector_index(train_vecs)
    # the training images' centre and band descriptors in one pass over their thumbnails: (N, 1 + len(BAND_BOXES), D)
    train_boxes = box_descriptors(train_thumbs, [centre_box(boxes[0]), *BAND_BOXES])
    idx_centre = build_vector_index(train_boxes[:, 0])
    qi_all, tj_all, cos_all, box_all = [], [], [], []
    capped = 0
    for bx, index in ((boxes, idx_full), (centre, idx_centre)):
        for grey in (False, True):
            q = box_descriptors(query_thumbs, bx, grey)  # (Q, B, D)
            c: dict = {}
            qi, tj, cos = vector_pairs(index, q.reshape(-1, q.shape[-1]), k, min_cos, counts=c)
            capped += c["capped"]
            keep = (qi % len(boxes) == 0) | (cos >= min_cos + CROP_COS_MARGIN)  # crops must match better than the whole
            qi, tj, cos = qi[keep], tj[keep], cos[keep]
            qi_all.append(qi // len(boxes))
            box_all.append(qi % len(boxes))
            tj_all.append(tj)
            cos_all.append(cos)
    if counts is not None:
        counts["capped"] = capped
    qi, tj, cos, box = (np.concatenate(x) for x in (qi_all, tj_all, cos_all, box_all))
    pref = cos - np.where(box >= N_SQUARE_BOXES, BAND_BOX_MARGIN, 0.0)  # a band must beat the square crops
    order = np.lexsort((-pref, tj, qi))  # per (query, train) pair the best cosine first
    qi, tj, cos, box, pref = qi[order], tj[order], cos[order], box[order], pref[order]
    first = np.ones(len(qi), bool)
    first[1:] = (qi[1:] != qi[:-1]) | (tj[1:] != tj[:-1])
    qi, tj, cos, box = qi[first], tj[first], cos[first], box[first]
    if per_query is not None:  # the best `per_query` pairs of each query image by cosine (a band's less the margin)
        order = np.lexsort((-pref[first], qi))
        rank = np.arange(len(qi)) - np.searchsorted(qi[order], qi[order])  # 0, 1, ... within each query
        keep = np.sort(order[rank < per_query])
        if counts is not None:
            counts["capped_total"] = len(np.unique(qi[order[rank >= per_query]]))
        qi, tj, cos, box = qi[keep], tj[keep], cos[keep], box[keep]
    # overlay queries (BAND_BOXES), after the cap: their cosines are of a band, not comparable with the others'. A pair
    # already found keeps its crop box; the new ones start from the whole frame (the verifier's overlay hypotheses)
    query_bands = box_descriptors(query_thumbs, BAND_BOXES)
    found = [(qi, tj, cos, box)]
    for b in range(len(BAND_BOXES)):
        bi, bj, bc = vector_pairs(build_vector_index(train_boxes[:, 1 + b]), query_bands[:, b], BAND_K, min_cos)
        found.append((bi, bj, bc.astype(cos.dtype), np.zeros(len(bi), box.dtype)))
    n_crop = len(qi)
    qi, tj, cos, box = (np.concatenate(x) for x in zip(*found))
    _, first = np.unique(qi.astype(np.int64) * len(train_thumbs) + tj, return_index=True)  # the first entry wins
    qi, tj, cos, box = qi[first], tj[first], cos[first], box[first]
    if counts is not None:
        counts["band_pairs"] = int((first >= n_crop).sum())
    return qi.astype(np.int64), tj.astype(np.int64), box.astype(np.int64), cos


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distance of two (P, 8) uint8 code arrays."""
    return _popcount(_as_u64(a) ^ _as_u64(b))
