"""The FAISS indexes answer the same near-duplicate pairs as an exact scan; clusters; config checks."""

from __future__ import annotations

import numpy as np
import pytest

from components.audit import hashing
from components.audit.config import AuditConfig
from components.audit.dedup import find_near_pairs


def _planted(n: int, flips: int, rng: np.random.Generator) -> tuple[np.ndarray, set[tuple[int, int]]]:
    base = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    bits = np.unpackbits(base[: n // 10], axis=1)
    for row in bits:
        row[rng.choice(64, flips, replace=False)] ^= 1
    return np.concatenate([base, np.packbits(bits, axis=1)]), {(i, n + i) for i in range(n // 10)}


@pytest.mark.parametrize("radius", [0, 2, 4, 5, 8])
def test_multi_index_hashing_equals_flat_scan(radius: int, monkeypatch) -> None:
    codes, truth = _planted(2000, radius, np.random.default_rng(radius))
    flat = set(zip(*(v.tolist() for v in find_near_pairs(codes, radius)[:2])))
    monkeypatch.setattr(hashing, "FLAT_MAX", 0)  # force multi-index hashing
    assert isinstance(hashing.build_index(codes, radius), hashing.HammingIndex) == (radius <= 8)
    mih = set(zip(*(v.tolist() for v in find_near_pairs(codes, radius)[:2])))
    assert mih == flat and truth <= flat


def _planted_vectors(rng: np.random.Generator, n: int = 3000, d: int = 192) -> np.ndarray:
    """n unit vectors on a 24-dimensional subspace plus noise, then 50 noisy copies of the first 50."""
    basis = rng.standard_normal((24, d)).astype(np.float32)
    x = rng.standard_normal((n, 24)).astype(np.float32) @ basis + 0.3 * rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    copies = x[:50] + 0.02 * rng.standard_normal((50, d)).astype(np.float32)
    x = np.concatenate([x, copies / np.linalg.norm(copies, axis=1, keepdims=True)])
    return x


def test_multi_index_hashing_on_clustered_codes(monkeypatch) -> None:
    """Repeated and near-repeated codes (full buckets, pairs found by several tables), queries != indexed set."""
    rng = np.random.default_rng(7)
    base = rng.integers(0, 256, (40, 8), dtype=np.uint8)
    codes = base[rng.integers(0, 40, 3000)]
    bits = np.unpackbits(codes, axis=1)
    bits[rng.random(bits.shape) < 0.03] ^= 1  # ~2 flipped bits per code
    codes = np.packbits(bits, axis=1)
    queries = codes[:500].copy()
    queries[:, 0] ^= 1  # one more flipped bit
    flat = hashing.build_index(codes, 4)
    monkeypatch.setattr(hashing, "FLAT_MAX", 0)
    mih = hashing.build_index(codes, 4)
    assert isinstance(mih, hashing.HammingIndex) and isinstance(flat, hashing.faiss.IndexBinaryFlat)
    want = sorted(zip(*(v.tolist() for v in hashing.range_pairs(flat, queries, 4))))
    got = sorted(zip(*(v.tolist() for v in hashing.range_pairs(mih, queries, 4))))
    assert got == want and len(want) > 10 * len(queries)
    with pytest.raises(ValueError, match="radius 4"):
        hashing.range_pairs(mih, queries, 2)


def test_inverted_file_finds_planted_vectors(monkeypatch) -> None:
    x = _planted_vectors(np.random.default_rng(0))
    monkeypatch.setattr(hashing, "FLAT_MAX", 0)  # force PCA + the inverted file
    index = hashing.build_vector_index(x)
    ivf = hashing.faiss.downcast_index(index.index.index)
    assert isinstance(ivf, hashing.faiss.IndexIVFFlat) and ivf.nlist == len(x) // 128 and ivf.d == 32
    # two-level k-means lists are balanced: the list a vector sits in holds at most ~2x the mean
    sizes = np.array([ivf.invlists.list_size(i) for i in range(ivf.nlist)])
    assert sizes.sum() == len(x) and (sizes**2).sum() / sizes.sum() < 2 * sizes.mean()
    qi, ids, cos = hashing.vector_pairs(index, x[3000:], 5, 0.9)
    # each planted copy finds its source and itself (it is indexed too), nothing else; cosines are exact
    assert {(int(i), int(j)) for i, j in zip(qi, ids)} == {(i, i) for i in range(50)} | {(i, 3000 + i) for i in range(50)}
    np.testing.assert_allclose(cos, np.einsum("pd,pd->p", x[3000:][qi], x[ids]), rtol=1e-6)


def test_graph_quantizer_beyond_the_flat_limit(monkeypatch) -> None:
    """Past FLAT_QUANTIZER_MAX lists the centroids sit in an HNSW graph; the planted pairs are still found."""
    x = _planted_vectors(np.random.default_rng(2))
    monkeypatch.setattr(hashing, "FLAT_MAX", 0)
    monkeypatch.setattr(hashing, "FLAT_QUANTIZER_MAX", 4)
    index = hashing.build_vector_index(x)
    ivf = hashing.faiss.downcast_index(index.index.index)
    assert isinstance(hashing.faiss.downcast_index(ivf.quantizer), hashing.faiss.IndexHNSWFlat)
    qi, ids, _ = hashing.vector_pairs(index, x[3000:], 5, 0.9)
    assert {(i, 3000 + i) for i in range(50)} <= {(int(i), int(j)) for i, j in zip(qi, ids)}


def test_projected_search_loses_no_pair_above_the_threshold(monkeypatch) -> None:
    """PCA only shortens distances: every list probed and no k cut-off give exactly the exact scan's pairs."""
    x = _planted_vectors(np.random.default_rng(1), n=1500)
    flat = hashing.build_vector_index(x)
    assert isinstance(flat.index, hashing.faiss.IndexFlatL2)
    monkeypatch.setattr(hashing, "FLAT_MAX", 0)
    reduced = hashing.build_vector_index(x, nprobe=len(x))  # nprobe >= nlist: every list is scanned
    for min_cos in (0.5, 0.8, 0.95):
        a = set(zip(*(v.tolist() for v in hashing.vector_pairs(flat, x, len(x), min_cos)[:2])))
        b = set(zip(*(v.tolist() for v in hashing.vector_pairs(reduced, x, len(x), min_cos)[:2])))
        assert len(a) > len(x) and a == b


def test_hamming_and_clusters() -> None:
    a = hashing.hashes_to_bits(["0000000000000000", "ffffffffffffffff"])
    b = hashing.hashes_to_bits(["0000000000000003", "ffffffffffffffff"])
    assert hashing.hamming(a, b).tolist() == [2, 0]
    # 0-1-2 chained, 3 alone, 4-5
    assert hashing.clusters(6, [0, 1, 4], [1, 2, 5]).tolist() == [0, 0, 0, 3, 4, 4]


def test_config_checks() -> None:
    assert AuditConfig(overlap_thresholds={"shape": 0.2}).threshold_for("shape") == 0.2
    assert AuditConfig().threshold_for("other") == AuditConfig().verify_threshold
    # without verification the per-dataset thresholds are Hamming distances
    assert AuditConfig(verify=False, overlap_thresholds={"shape": 2}).threshold_for("shape") == 2
    assert AuditConfig(verify=False).threshold_for("other") == AuditConfig().hamming_threshold
    with pytest.raises(ValueError, match=r"overlap_thresholds\.shape"):
        AuditConfig(overlap_thresholds={"shape": 3.5}, verify=False)
    with pytest.raises(ValueError, match="verify_threshold"):
        AuditConfig(verify_threshold=0)
    with pytest.raises(ValueError, match="out of range"):
        AuditConfig(hamming_threshold=40)
    with pytest.raises(ValueError, match="alpha"):
        AuditConfig(alpha=0)


def test_params_section_loads() -> None:
    from flows.params import load_params

    p = load_params("params.yaml", ["audit.overlap_thresholds={shape: 0.2}", "audit.dedup_policy=keep_one"])
    assert p.audit.threshold_for("shape") == 0.2 and p.audit.dedup_policy == "keep_one"
    assert p.to_dict()["audit"]["overlap_thresholds"] == {"shape": 0.2}


def test_self_join_keeps_one_sided_neighbours() -> None:
    """k-NN is not symmetric: a pair found only from one end is still returned (once, i < j)."""
    # 0 and 1 are each other's nearest; 2 has 1 as its nearest, but 1's single neighbour is 0
    x = np.array([[1.0, 0.0], [0.99, 0.141], [0.95, 0.312], [-1.0, 0.0]], np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = hashing.build_vector_index(x)
    qi, ids, _ = hashing.vector_pairs(index, x, 2, 0.8, self_join=True)  # k=2: itself + one neighbour
    assert sorted(zip(qi.tolist(), ids.tolist())) == [(0, 1), (1, 2)]


def test_crop_queries_find_crops_that_change_the_aspect_by_their_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four real crops that change the aspect (Noto emoji, Apache 2.0; Hubble Deep Field tiles, NASA, public domain;
    from the real-image benchmark, 2026-12-02): each is found for its original by a full-width or full-height band
    query, and none of the emoji is found without the bands (square crops only: cosine 0.59-0.82 there)."""
    from pathlib import Path

    from PIL import Image

    strip = np.asarray(Image.open(Path(__file__).parent / "data" / "band_crops.png").convert("RGB"))
    th = np.stack(np.split(strip, strip.shape[1] // 64, axis=1))  # (original, crop) x 4
    orig, crops = th[0::2], th[1::2]
    vecs = hashing.box_descriptors(crops, [(0.0, 0.0, 1.0, 1.0)])[:, 0]
    qi, tj, box, _ = hashing.crop_query_pairs(vecs, crops, orig, 10, 0.8)
    found = {int(q): int(b) for q, t, b in zip(qi, tj, box) if q == t}
    assert sorted(found) == [0, 1, 2, 3] and min(found.values()) >= hashing.N_SQUARE_BOXES, found
    monkeypatch.setattr(hashing, "CROP_BOXES", hashing.CROP_BOXES[: hashing.N_SQUARE_BOXES])
    qi, tj, _, _ = hashing.crop_query_pairs(vecs, crops, orig, 10, 0.8)
    assert not {0, 1, 2} & {int(q) for q, t in zip(qi, tj) if q == t}
