"""The audit stage in one call: dedup the ingested training set and/or audit train/eval overlap, then the gate."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec

from components.data.ingest import read_metadata
from components.io import write_json

from .config import AuditConfig
from .dedup import dedup, save_dedup
from .overlap import gate, load_eval_sets, run_overlap
from .shards import load_shard_images, shard_features
from .verify import thumb_size

ROW_KEYS = ("overlap_rate", "acc_all", "acc_clean", "acc_overlap", "all_minus_clean", "p_value", "significant")


@dataclass(frozen=True)
class AuditResult:
    """What the audit found: flat numbers (as in summary.json), the gate verdict and the files it wrote."""

    summary: dict[str, Any]
    passed: bool
    reason: str
    line: str | None = None  # the overlap verdict in one sentence (None without the overlap step)
    files: dict[str, str] = field(default_factory=dict)


def run_audit(
    ingest_dir: str,
    eval_root: str,
    predictions_root: str,
    out: str,
    cfg: AuditConfig,
    steps: Sequence[str] = ("overlap",),
    include: Sequence[str] | None = None,
    engine: str = "local",
) -> AuditResult:
    """Dedup (`"dedup"` in steps) and/or overlap (`"overlap"`) over `ingest_dir` (metadata.parquet + shards/);
    writes `out`/{dedup,overlap,summary}.json. The overlap step reads the eval sets under `eval_root` (only those in
    `include`, when given) and the evaluation's per-sample zero-shot results under `predictions_root`. Without the
    dedup step, an earlier dedup.json in `out` is folded into the summary. `engine` "ray" (data.engine) computes the
    image features on Ray Data (Ray must be up); the candidate search and verification stay in this process."""
    meta = read_metadata(ingest_dir)
    shards = f"{ingest_dir}/shards"
    need = cfg.use_embeddings or cfg.verify
    descriptors, thumbs = shard_features(shards, meta, thumb_size(cfg.verify_method), engine) if need else (None, None)
    summary: dict[str, Any] = {}
    files: dict[str, str] = {}
    dup_rate, rows, line = None, [], None
    if "dedup" in steps:
        d = dedup(meta, cfg, descriptors, thumbs)
        s = save_dedup(d, out, cfg)
        dup_rate = d.duplicate_rate
        summary.update({f"dedup/{k}": v for k, v in s.items() if isinstance(v, (int, float, str)) and k != "exclude_keys_file"})
        files["dedup"] = f"{out}/dedup.json"
        if cfg.dedup_policy != "report":
            files["exclude keys"] = f"{out}/exclude_keys.txt"
    if "overlap" in steps:
        evals = load_eval_sets(eval_root, predictions_root, include)
        keys, phash = meta["key"].astype(str).tolist(), meta["phash"].astype(str).tolist()
        o = run_overlap(keys, phash, evals, cfg, out, lambda ks: load_shard_images(shards, meta, ks), descriptors, thumbs)
        rows, line = o.rows, o.summary["line"]
        summary.update({f"overlap/{k}": v for k, v in o.summary.items() if k != "line"})
        for r in o.doc["datasets"]:
            summary.update({f"{r['dataset']}/{k}": r[k] for k in ROW_KEYS})
        files.update({"overlap": f"{out}/overlap.html", "overlap json": f"{out}/overlap.json"})
    passed, reason = gate(rows, cfg, dup_rate)
    summary["gate/passed"] = passed
    fs, dedup_json = fsspec.core.url_to_fs(f"{out}/dedup.json")
    if "dedup" not in steps and fs.exists(dedup_json):  # the overlap step after a separate dedup stage: report both
        with fs.open(dedup_json, "r") as f:
            earlier = {k: v for k, v in json.load(f).items() if isinstance(v, (int, float, str))}
        summary = {**{f"dedup/{k}": v for k, v in earlier.items() if k != "exclude_keys_file"}, **summary}
    write_json(f"{out}/summary.json", summary)  # flat numbers for the report
    return AuditResult(summary, passed, reason, line, {**files, "summary": f"{out}/summary.json"})
