"""What identifies a training run's inputs: the training code, the shards and the data version it trains on.

DVC keeps OUT/train/checkpoints across runs (persist), so a run killed mid-training resumes; a checkpoint is resumed
only when its `resume_key` equals this run's, so a code or data change starts fresh (or from the champion) instead of
resuming, or re-exporting, a model trained on something else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import fsspec

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("clip_core", "components/train", "infra")


def code_version(extra: Sequence[str | Path] = ()) -> str:
    """16 hex digits over the training code (.py/.json/.yaml under CODE_DIRS), plus the `extra` files' bytes."""
    code = hashlib.sha256()
    for d in CODE_DIRS:
        for f in sorted((ROOT / d).rglob("*")):
            if f.suffix in (".py", ".json", ".yaml") and "__pycache__" not in f.parts:
                code.update(f.relative_to(ROOT).as_posix().encode() + f.read_bytes())
    for f in extra:
        code.update(Path(f).read_bytes())
    return code.hexdigest()[:16]


def shards_fingerprint(shards: Sequence[str], exclude: Sequence[str] = ()) -> str:
    """16 hex digits over the shard URLs and sizes, and the excluded keys (an empty list adds nothing, so the keys
    of older checkpoints stay valid)."""
    fingerprint = hashlib.sha256()
    for url in shards:
        fs, path = fsspec.core.url_to_fs(url)
        fingerprint.update(f"{url}\t{fs.size(path)}\n".encode())
    if exclude:
        fingerprint.update("\n".join(exclude).encode())
    return fingerprint.hexdigest()[:16]


def resume_key(
    shards: Sequence[str], exclude: Sequence[str] = (), data: str = "", init: str = "", code: str | None = None
) -> dict[str, str]:
    """What a checkpoint must share with this run to be resumed, beyond the train config: the training code
    (`code`, default `code_version()`), the shards (names and sizes), the data's content version and the start."""
    key = {"code": code or code_version(), "shards": shards_fingerprint(shards, exclude)}
    key.update({k: v for k, v in (("data", data), ("init", init)) if v})
    return key


def training_data_version(
    ingest: Mapping[str, Any], shards: Sequence[str], exclude: Sequence[str], keep: Sequence[str] | None = None
) -> str:
    """The content version of what training reads: the ingested rows' hash (ingest's data_version), else the shard
    list's fingerprint; with the dedup exclusions and the CLIP-score filter's kept keys folded in."""
    base = ingest.get("data_version") or "shards:" + shards_fingerprint(shards)
    if exclude:
        base = f"{base}-x{hashlib.sha256(chr(10).join(exclude).encode()).hexdigest()[:8]}"
    if keep is not None:
        base = f"{base}-k{hashlib.sha256(chr(10).join(keep).encode()).hexdigest()[:8]}"
    return base
