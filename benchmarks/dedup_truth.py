"""Score the overlap search against the embedded dataset's planted ground truth (OUT/raw/planted_duplicates.csv).

Run from the project root after `data synth` and `data ingest`:
    python benchmarks/dedup_truth.py --out out
Prints recall and pair precision for pHash-only, descriptor-only, the unverified candidates and the
default (candidates confirmed by the aligned pixel check, `audit.verify`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages, not an installed copy

from components.audit.config import AuditConfig
from components.audit.hashing import hashes_to_bits
from components.audit.overlap import find_overlap, load_eval_images
from components.audit.shards import shard_features

D = AuditConfig()
# (label, Hamming threshold or None for "no pHash matches", descriptor cosine or None, verify)
METHODS = [
    ("pHash <= 0", 0, None, False),
    (f"pHash <= {D.hamming_threshold}", D.hamming_threshold, None, False),
    ("cosine >= 0.99 only", None, 0.99, False),
    (
        f"candidates: pHash <= {D.hamming_threshold} OR cosine >= {D.embedding_threshold}",
        D.hamming_threshold,
        D.embedding_threshold,
        False,
    ),
    (f"default: candidates verified (residual <= {D.verify_threshold})", D.hamming_threshold, D.embedding_threshold, True),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out", help="pipeline output root (with raw/ and ingest/)")
    out = p.parse_args().out
    meta = pd.read_parquet(f"{out}/ingest/metadata.parquet")
    keys = meta["key"].astype(str).tolist()
    bits = hashes_to_bits(meta["phash"])
    never = np.full_like(bits, 255)  # all-ones codes: no eval pHash matches them, for descriptor-only rows
    vecs, thumbs = shard_features(f"{out}/ingest/shards", meta)
    truth = pd.read_csv(f"{out}/raw/planted_duplicates.csv", dtype=str)
    evals = {d: load_eval_images(f"{out}/raw/eval/{d}") for d in sorted(truth["eval_dataset"].unique())}
    for label, t, cos, verify in METHODS:
        tp = other = flagged = flagged_planted = 0
        for name, ev in evals.items():
            g = truth[truth["eval_dataset"] == name]
            planted = dict(zip(g["eval_image"], g["train_key"]))
            found = find_overlap(
                keys, bits if t is not None else never, ev, t or 0, vecs if cos else None, cos or 0.0, D.knn,
                thumbs if verify else None, D.verify_threshold,
            )  # fmt: skip
            for i, matches in found.items():
                ks = {k for k, _ in matches}
                ref = ev.refs[i]
                flagged += 1
                flagged_planted += ref in planted
                hit = ref in planted and planted[ref] in ks
                tp += hit
                other += len(ks) - hit
        print(
            f"{label}: recall {tp}/{len(truth)} = {tp / len(truth):.3f}; pair precision {tp / max(tp + other, 1):.4f}; "
            f"eval images flagged {flagged} (planted {flagged_planted})"
        )


if __name__ == "__main__":
    main()
