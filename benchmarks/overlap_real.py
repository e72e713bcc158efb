"""Benchmark: the overlap audit and dedup on real images with planted copies (recall per family, precision).

Run from the project root (first run builds a cache of the sources, a few minutes):
    python benchmarks/overlap_real.py --sizes 1000 9500 [--seeds 0 1 2] [--set audit.verify_threshold=0.2] [--holdout emoji]
Sources and copy families: `benchmarks/overlap_data.py` (openclipart-png drawings and Noto colour emoji on plain
backgrounds, 48 px tiles of scikit-image's photos). Missing apt packages are installed when running as root.
It runs the same functions as `clip-pipeline audit`: features per image as `shards.shard_features` computes them,
`overlap.audit_dataset` for the eval set, `dedup.dedup` (policy keep_one) for the training set, with the `audit`
section of params.yaml (plus `--set` overrides). `--holdout SOURCE` also reports the numbers without that source's
eval rows (choose thresholds on the others, then read the held-out source). `--seeds`: one planting per seed (which
items are planted, and each copy's random transformation), and per size their pooled counts (one seed plants 30 copies
per family at 9.5k: one copy is 0.033 of a family's recall). Prints JSON; numbers go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's packages, not an installed copy
sys.path.insert(0, str(ROOT / "benchmarks"))

from overlap_data import CLIPART_DIR, EMOJI_FONT, load_sources, plant, pool_overlap, score_dedup, score_overlap  # noqa: E402

from components.audit.config import AuditConfig  # noqa: E402
from components.audit.dedup import dedup  # noqa: E402
from components.audit.hashing import crop_query_pairs, hashes_to_bits, image_phash  # noqa: E402
from components.audit.overlap import CROP_PER_IMAGE, EvalImages, audit_dataset, overlap_candidates  # noqa: E402
from components.audit.shards import image_features  # noqa: E402
from components.audit.verify import thumb_size, thumbnail  # noqa: E402

CACHE = Path.home() / ".cache" / "clip-pipeline" / "overlap_real_v3"  # v3: one file per drawing (load_clipart)


def ensure_packages() -> None:
    """apt-get install the image packages when missing (root only; otherwise the sources are simply absent)."""
    missing = [p for p, f in (("openclipart-png", CLIPART_DIR), ("fonts-noto-color-emoji", EMOJI_FONT)) if not Path(f).exists()]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", *missing], check=False)


def features(images: list, size: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(pHash hex per image, descriptors, thumbnails), as ingest + shards.shard_features compute them."""
    hexes = [image_phash(im) for im in images]
    pairs = [image_features(im, size) for im in images]
    return hexes, np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def run_size(sources: dict, n: int, cfg: AuditConfig, holdout: str | None, seed: int, run_dedup: bool = True) -> dict:
    per_cell, dup_per_cell, clean = (10, 3, 100) if n >= 5000 else (3, 1, 50)
    p = plant(sources, n, per_cell, clean, dup_per_cell, seed)
    train, ev = p["train"], p["eval"]
    t0 = time.perf_counter()
    hexes, vecs, thumbs = features([im for _, im, _ in train], thumb_size(cfg.verify_method))
    t_feat = time.perf_counter() - t0
    keys = [k for k, _, _ in train]
    evi = EvalImages("real", [im for _, im, _ in ev], [k for k, _, _ in ev], None)
    t0 = time.perf_counter()
    r = audit_dataset(keys, hashes_to_bits(hexes), evi, cfg, vecs, thumbs)
    t_overlap = time.perf_counter() - t0
    row = {"train": len(train), "eval": len(ev), "seed": seed, "planted_eval_copies": len(p["truth_eval"]),
           "features_s": round(t_feat, 1), "overlap_s": round(t_overlap, 1)}  # fmt: skip
    row["overlap"] = score_overlap(r.matches, ev, p["truth_eval"])
    # the candidates alone (no verification): does the search reach the planted copy?
    c = overlap_candidates(hashes_to_bits(hexes), evi, cfg.hamming_threshold, vecs if cfg.use_embeddings else None,
                           cfg.embedding_threshold, cfg.knn)  # fmt: skip
    cand = {}
    for i, j in zip(c["row"].tolist(), c["train"].tolist()):
        cand.setdefault(i, []).append(keys[j])
    if cfg.use_embeddings and cfg.crop_queries:  # what audit_dataset searches with crop queries on
        ev_thumbs = np.stack([thumbnail(im, thumbs.shape[1]) for im in evi.images])
        for i, j, _, _ in zip(
            *crop_query_pairs(vecs, thumbs, ev_thumbs, cfg.knn, cfg.embedding_threshold, per_query=CROP_PER_IMAGE * cfg.knn)
        ):
            cand.setdefault(int(i), []).append(keys[int(j)])
    row["candidates_recall_by_family"] = score_overlap(cand, ev, p["truth_eval"])["found_by_family"]
    if getattr(r, "diagnostics", None):
        row["overlap"]["diagnostics"] = r.diagnostics
    if holdout:
        keep = [i for i, e in enumerate(ev) if e[2] == holdout]
        sub = {i: r.matches[i] for i in keep if i in r.matches}
        row[f"overlap_{holdout}_only"] = score_overlap(sub, ev, {i: t for i, t in p["truth_eval"].items() if i in keep})
        rest = {i: v for i, v in r.matches.items() if ev[i][2] != holdout}
        row[f"overlap_without_{holdout}"] = score_overlap(
            rest, ev, {i: t for i, t in p["truth_eval"].items() if ev[i][2] != holdout}
        )
    if not run_dedup:
        return row
    meta = pd.DataFrame({"key": keys, "caption": [f"c{i}" for i in range(len(keys))],
                         "sha256": [hashlib.sha256(im.tobytes()).hexdigest() for _, im, _ in train], "phash": hexes})  # fmt: skip
    t0 = time.perf_counter()
    d = dedup(meta, AuditConfig(**{**cfg.__dict__, "dedup_policy": "keep_one"}), vecs, thumbs)
    row["dedup_s"] = round(time.perf_counter() - t0, 1)
    row["dedup"] = score_dedup(list(zip(d.pairs["key_a"], d.pairs["key_b"])), d.exclude_keys, p["truth_dup"])
    row["dedup"]["summary"] = d.summary
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--set", action="append", default=[], help="params override, e.g. audit.verify_threshold=0.2")
    ap.add_argument("--holdout", default="emoji", help="source reported on its own (not used to choose thresholds)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="one planting per seed, pooled per size")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--dedup-max", type=int, default=10**9, help="run dedup only at sizes up to this")
    ap.add_argument("--tile", type=int, default=32, help="side of the photo tiles (32: the original benchmark)")
    args = ap.parse_args()
    from flows.params import load_params

    cfg = load_params(ROOT / "params.yaml", args.set).audit
    ensure_packages()
    t0 = time.perf_counter()
    sources = load_sources(CACHE, args.tile)
    out = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs python {platform.python_version()}",
           "tile": args.tile, "sources": {s: len(v) for s, v in sources.items()}, "load_s": round(time.perf_counter() - t0, 1),
           "config": {k: v for k, v in cfg.__dict__.items() if k != "overlap_thresholds"}, "rows": []}  # fmt: skip
    for n in args.sizes:
        rows = []
        for seed in args.seeds:
            rows.append(run_size(sources, n, cfg, args.holdout, seed, n <= args.dedup_max))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        out["rows"] += rows
        if len(rows) > 1:
            out.setdefault("pooled", {})[str(n)] = pool_overlap([r["overlap"] for r in rows])
            print(json.dumps({"train": n, "pooled": out["pooled"][str(n)]}), file=sys.stderr, flush=True)
    text = json.dumps(out, indent=1, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
