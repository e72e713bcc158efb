"""The teacher and its CLIP score: cosine of the image and caption embeddings, one batch of pairs at a time.

One per-pair code path for both engines: the local loop below and the Ray Data actors (ray_score.py)
call `score_pairs` on batches of (image bytes, caption) read by the project's one shard reader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from components.data.tarstream import SHARD_IMAGE_EXTS, iter_shard_samples
from components.evaluate.cache import autocast, eval_transform
from components.evaluate.images import decode_image
from components.evaluate.suite import load_model_dir, resolve_device

log = logging.getLogger(__name__)


@dataclass
class Teacher:
    """A loaded scoring model: eval-mode CLIP, its own tokenizer and preprocessing, where it runs."""

    model: torch.nn.Module
    tokenizer: Callable[[list[str]], torch.Tensor]
    transform: Callable
    precision: str = "fp32"
    sha256: str = ""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> Teacher:
        self.model.to(device)
        return self


def load_teacher(model_dir: str, device: str = "auto", precision: str = "fp32", model_config: str = "") -> Teacher:
    """The teacher from any model input `clip_core.load_model` reads (a local path), on `device` (auto: CUDA if any)."""
    model, tokenizer, sha = load_model_dir(model_dir, resolve_device(device), model_config=model_config or None)
    return Teacher(model, tokenizer, eval_transform(model), precision, sha)


@torch.no_grad()
def score_pairs(teacher: Teacher, images: list[bytes | None], captions: list[str]) -> np.ndarray:
    """(B,) float32 cosine of each image and its caption; NaN where the image does not decode (or is missing)."""
    pixels, ok = [], []
    for data in images:
        try:
            pixels.append(teacher.transform(decode_image(data)))  # (3, S, S)
            ok.append(True)
        except Exception as e:
            log.warning("filter: unreadable image skipped (%s)", e)
            ok.append(False)
    out = np.full(len(images), np.nan, dtype=np.float32)
    if not pixels:
        return out
    device, keep = teacher.device, np.flatnonzero(ok)
    with autocast(device, teacher.precision):
        img = teacher.model.encode_image(torch.stack(pixels).to(device))  # (b, D)
        txt = teacher.model.encode_text(teacher.tokenizer([captions[i] for i in keep]).to(device))  # (b, D)
    cos = (F.normalize(img.float(), dim=-1) * F.normalize(txt.float(), dim=-1)).sum(-1)  # (b,)
    out[keep] = cos.cpu().numpy()
    return out


def iter_pairs(shards: Iterable[str]) -> Iterator[tuple[str, bytes | None, str]]:
    """(key, image bytes or None, caption) of every sample of the shards, in shard order."""
    for s in iter_shard_samples(shards):
        ext = next((e for e in SHARD_IMAGE_EXTS if e in s), None)
        caption = s.get("txt", b"").decode("utf-8", "replace")
        yield s["__key__"], s[ext] if ext else None, caption


def score_shards_local(shards: list[str], teacher: Teacher, batch_size: int = 64) -> dict[str, np.ndarray]:
    """{"key": (N,) str, "score": (N,) float32} for every pair of `shards`, in this process."""
    keys: list[str] = []
    scores: list[np.ndarray] = []
    batch: list[tuple[str, bytes | None, str]] = []

    def flush() -> None:
        keys.extend(k for k, _, _ in batch)
        scores.append(score_pairs(teacher, [b for _, b, _ in batch], [c for _, _, c in batch]))
        batch.clear()

    for pair in iter_pairs(shards):
        batch.append(pair)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return {"key": np.array(keys, dtype=object), "score": np.concatenate(scores) if scores else np.zeros(0, np.float32)}


def shard_rows(shards: list[str]) -> list[dict[str, Any]]:
    """One row per shard: the Ray Data input (each actor task reads whole shards with the one shard reader)."""
    return [{"shard": s} for s in shards]
