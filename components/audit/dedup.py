"""Training-set dedup: exact (sha256) and near duplicate clusters (FAISS candidates, aligned pixel check), duplicate captions."""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from components.io import write_atomic, write_json, write_parquet

from .config import AuditConfig
from .hashing import (
    build_index,
    build_vector_index,
    clusters,
    hamming,
    hashes_to_bits,
    range_pairs,
    unique_pairs,
    vector_pairs,
)
from .verify import verify_pairs


@dataclass(frozen=True)
class DedupResult:
    """Duplicate structure of one training table and the keys the policy excludes."""

    n_rows: int
    n_exact_pairs: int
    n_near_pairs: int
    n_clusters: int  # clusters with >= 2 members
    n_in_clusters: int
    exclude_keys: list[str]
    caption_groups: list[list[str]]  # keys sharing one normalised caption (groups of >= 2)
    pairs: pd.DataFrame  # key_a, key_b, hamming, residual (aligned pixel check; NaN if not run), kind ("exact" | "near")
    cluster_table: pd.DataFrame  # key, cluster (first key of the cluster), size
    seconds: float
    summary: dict = field(default_factory=dict)

    @property
    def duplicate_rate(self) -> float:
        """Share of rows that duplicate an earlier row (members beyond the first of each cluster)."""
        return (self.n_in_clusters - self.n_clusters) / max(self.n_rows, 1)


def normalise_caption(text: str) -> str:
    """Lower-case, NFKC, punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def find_near_pairs(
    bits: np.ndarray, radius: int, vecs: np.ndarray | None = None, min_cos: float = 0.8, k: int = 10,
    counts: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(i, j, hamming) with i < j: pHash within `radius`, or (with `vecs`) descriptor cosine >= `min_cos`, at most k per image.

    `counts` gets "capped": images whose descriptor neighbours in range reached the cap k (see vector_pairs).
    """
    qi, ids, _ = range_pairs(build_index(bits, radius), bits, radius)
    keep = qi < ids
    qi, ids = qi[keep], ids[keep]
    if vecs is not None:
        vi, vj, _ = vector_pairs(build_vector_index(vecs), vecs, k + 1, min_cos, self_join=True, counts=counts)  # vi < vj
        qi, ids = np.concatenate([qi, vi]), np.concatenate([ids, vj])
    i, j = unique_pairs(qi, ids, len(bits))
    return i, j, hamming(bits[i], bits[j])


def dedup(
    meta: pd.DataFrame, cfg: AuditConfig, descriptors: np.ndarray | None = None, thumbs: np.ndarray | None = None
) -> DedupResult:
    """Cluster exact and near duplicates of a metadata table (columns key, caption, sha256, phash).

    `descriptors` (N, D) are used when `cfg.use_embeddings` (see hashing.descriptor), `thumbs`
    (N, T, T, 3) uint8 when `cfg.verify` (see verify.thumbnail); rows in `meta` order.
    """
    t0 = time.perf_counter()
    meta = meta.reset_index(drop=True)
    keys = meta["key"].astype(str).tolist()
    n = len(meta)
    # exact: rows sharing a sha256, chained to the group's first row
    first = meta.groupby("sha256", sort=False).cumcount() > 0
    head = meta.groupby("sha256", sort=False)["key"].transform("first")
    key_pos = {k: i for i, k in enumerate(keys)}
    ex_j = np.flatnonzero(first.to_numpy())
    ex_i = np.array([key_pos[head[j]] for j in ex_j], dtype=np.int64)
    # near: pHash Hamming range search; exact pairs already counted
    bits = hashes_to_bits(meta["phash"].astype(str))
    vecs = descriptors if cfg.use_embeddings else None
    if cfg.use_embeddings and descriptors is None:
        raise ValueError("audit.use_embeddings is true but no image descriptors were passed")
    counts: dict = {}
    ni, nj, nd = find_near_pairs(bits, cfg.hamming_threshold, vecs, cfg.embedding_threshold, cfg.knn, counts)
    exact_set = set(zip(ex_i.tolist(), ex_j.tolist()))
    near_mask = np.array([(a, b) not in exact_set for a, b in zip(ni.tolist(), nj.tolist())], dtype=bool)
    ni, nj, nd = ni[near_mask], nj[near_mask], nd[near_mask]
    n_candidates = len(ni)
    res = np.full(len(ni), np.nan, np.float32)
    if cfg.verify:
        if thumbs is None or len(thumbs) != n:
            raise ValueError("audit.verify is true but no thumbnails (one per metadata row) were passed")
        res = verify_pairs(
            thumbs,
            thumbs,
            ni,
            nj,
            cfg.verify_threshold,
            cfg.verify_method,
            both_ways=True,
            orb_threshold=cfg.orb_threshold,
            orb_min_inliers=cfg.orb_min_inliers,
            ecc_threshold=cfg.ecc_threshold,
        )
        # (both ways: either image may be the crop)
        keep = res <= cfg.verify_threshold
        ni, nj, nd, res = ni[keep], nj[keep], nd[keep], res[keep]
    pairs = pd.DataFrame(
        {
            "key_a": [keys[i] for i in np.concatenate([ex_i, ni])],
            "key_b": [keys[j] for j in np.concatenate([ex_j, nj])],
            "hamming": np.concatenate([np.zeros(len(ex_i), np.int64), nd]),
            "residual": np.concatenate([np.zeros(len(ex_i), np.float32), res]),
            "kind": ["exact"] * len(ex_i) + ["near"] * len(ni),
        }
    )
    cid = clusters(n, np.concatenate([ex_i, ni]), np.concatenate([ex_j, nj]))
    sizes = np.bincount(cid, minlength=n)[cid]
    in_cl = sizes > 1
    table = pd.DataFrame({"key": np.array(keys)[in_cl], "cluster": np.array(keys)[cid[in_cl]], "size": sizes[in_cl]})
    n_clusters = len(np.unique(cid[in_cl]))
    if cfg.dedup_policy == "drop":
        exclude = table["key"].tolist()
    elif cfg.dedup_policy == "keep_one":
        exclude = table.loc[table["key"] != table["cluster"], "key"].tolist()
    else:
        exclude = []
    norm = meta["caption"].astype(str).map(normalise_caption)
    groups = [g.tolist() for _, g in meta["key"].astype(str).groupby(norm, sort=True) if len(g) > 1]
    return DedupResult(
        n_rows=n,
        n_exact_pairs=len(ex_i),
        n_near_pairs=len(ni),
        n_clusters=n_clusters,
        n_in_clusters=int(in_cl.sum()),
        exclude_keys=exclude,
        caption_groups=groups,
        pairs=pairs,
        cluster_table=table,
        seconds=time.perf_counter() - t0,
        summary={"near_candidates": n_candidates, "capped_images": counts.get("capped", 0)},
    )


def save_dedup(r: DedupResult, out_dir: str | Path, cfg: AuditConfig) -> dict:
    """Write dedup.json, dedup_clusters.parquet, dedup_pairs.parquet and exclude_keys.txt (empty unless drop/keep_one)."""
    out = str(out_dir).rstrip("/")  # a local path or any fsspec URL
    summary = {
        "rows": r.n_rows,
        "policy": cfg.dedup_policy,
        "hamming_threshold": cfg.hamming_threshold,
        "use_embeddings": cfg.use_embeddings,
        "verify": cfg.verify,
        "verify_threshold": cfg.verify_threshold,
        "near_candidates": r.summary.get("near_candidates"),
        "capped_images": r.summary.get("capped_images"),  # images with audit.knn neighbours in range: raise knn if > 0
        "exact_pairs": r.n_exact_pairs,
        "near_pairs": r.n_near_pairs,
        "clusters": r.n_clusters,
        "rows_in_clusters": r.n_in_clusters,
        "duplicate_rate": r.duplicate_rate,
        "excluded": len(r.exclude_keys),
        "duplicate_caption_groups": len(r.caption_groups),
        "rows_with_duplicate_caption": int(sum(len(g) for g in r.caption_groups)),
        "largest_caption_groups": sorted(r.caption_groups, key=len, reverse=True)[:10],
        "seconds": round(r.seconds, 3),
    }
    write_parquet(f"{out}/dedup_clusters.parquet", r.cluster_table)
    write_parquet(f"{out}/dedup_pairs.parquet", r.pairs)
    # one key per line (empty with policy "report"); training skips these keys (flows/train_stage.exclude_keys)
    write_atomic(f"{out}/exclude_keys.txt", "".join(f"{k}\n" for k in r.exclude_keys))
    summary["exclude_keys_file"] = f"{out}/exclude_keys.txt"
    write_json(f"{out}/dedup.json", summary)
    return summary


__all__ = ["DedupResult", "dedup", "find_near_pairs", "normalise_caption", "save_dedup"]
