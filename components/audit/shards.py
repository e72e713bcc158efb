"""Read selected training images back from the ingested webdataset shards (only the shards that hold them)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence

import fsspec
import numpy as np
import pandas as pd
from PIL import Image

from .hashing import descriptor

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")


def load_shard_images(shards_dir: str, meta: pd.DataFrame, keys: Sequence[str]) -> dict[str, Image.Image]:
    """key -> RGB image for `keys`, reading each needed shard (metadata column `shard`) once, sequentially."""
    want = set(map(str, keys))
    rows = meta[meta["key"].astype(str).isin(want)]
    out: dict[str, Image.Image] = {}
    for shard, group in rows.groupby("shard"):
        needed = set(group["key"].astype(str))
        with fsspec.open(f"{shards_dir.rstrip('/')}/{shard}", "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            for m in tar:
                stem, dot, ext = m.name.rpartition(".")
                if stem in needed and f"{dot}{ext}".lower() in IMAGE_EXTS:
                    out[stem] = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")  # type: ignore[union-attr]
    return out


def shard_descriptors(shards_dir: str, meta: pd.DataFrame) -> np.ndarray:
    """(N, D) image descriptors of every training image, rows in `meta` order (for `use_embeddings`)."""
    keys = meta["key"].astype(str).tolist()
    pos = {k: i for i, k in enumerate(keys)}
    out: np.ndarray | None = None
    for shard, group in meta.groupby("shard"):
        needed = set(group["key"].astype(str))
        with fsspec.open(f"{shards_dir.rstrip('/')}/{shard}", "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            for m in tar:
                stem, dot, ext = m.name.rpartition(".")
                if stem in needed and f"{dot}{ext}".lower() in IMAGE_EXTS:
                    v = descriptor(Image.open(io.BytesIO(tar.extractfile(m).read())))  # type: ignore[union-attr]
                    if out is None:
                        out = np.zeros((len(keys), v.shape[0]), np.float32)
                    out[pos[stem]] = v
    return out if out is not None else np.zeros((0, 192), np.float32)
