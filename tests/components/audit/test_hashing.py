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
    monkeypatch.setattr(hashing, "FLAT_MAX", 0)  # force IndexBinaryMultiHash
    assert isinstance(hashing.build_index(codes, radius), hashing.faiss.IndexBinaryMultiHash) == (radius <= 8)
    mih = set(zip(*(v.tolist() for v in find_near_pairs(codes, radius)[:2])))
    assert mih == flat and truth <= flat


def test_inverted_file_finds_planted_vectors(monkeypatch) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 32)).astype(np.float32)
    x = np.concatenate([x, x[:50] + 0.2 * rng.standard_normal((50, 32)).astype(np.float32)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    monkeypatch.setattr(hashing, "FLAT_MAX", 0)  # force the inverted file (random-sample centroids)
    index = hashing.build_vector_index(x)
    assert isinstance(index, hashing.faiss.IndexIVFFlat) and index.nlist == len(x) // 64
    qi, ids, _cos = hashing.vector_pairs(index, x[3000:], 5, 0.9)
    # each planted copy finds its source and itself (it is indexed too), nothing else
    assert {(int(i), int(j)) for i, j in zip(qi, ids)} == {(i, i) for i in range(50)} | {(i, 3000 + i) for i in range(50)}


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
