"""Read selected training images back from the ingested webdataset shards (only the shards that hold them)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from components.data.tarstream import SHARD_IMAGE_EXTS, iter_shard_samples

from .hashing import descriptor
from .verify import THUMB, thumbnail


def _shard_images(shards_dir: str, meta: pd.DataFrame, keys: set[str]) -> Iterator[tuple[str, Image.Image]]:
    """(key, RGB image) for `keys`, reading each shard that holds one (metadata column `shard`) once, sequentially."""
    rows = meta[meta["key"].astype(str).isin(keys)]
    for shard, group in rows.groupby("shard"):
        needed = set(group["key"].astype(str))
        for sample in iter_shard_samples([f"{shards_dir.rstrip('/')}/{shard}"]):
            ext = next((e for e in SHARD_IMAGE_EXTS if e in sample), None)
            if sample["__key__"] in needed and ext is not None:
                yield sample["__key__"], Image.open(io.BytesIO(sample[ext])).convert("RGB")


def load_shard_images(shards_dir: str, meta: pd.DataFrame, keys: Sequence[str]) -> dict[str, Image.Image]:
    """key -> RGB image for `keys`."""
    return dict(_shard_images(shards_dir, meta, set(map(str, keys))))


def image_features(img: Image.Image, size: int = THUMB) -> tuple[np.ndarray, np.ndarray]:
    """(descriptor (D,) float32, thumbnail (size, size, 3) uint8) of one image: what dedup and the overlap audit compare."""
    return descriptor(img), thumbnail(img, size)


def shard_features(
    shards_dir: str, meta: pd.DataFrame, size: int = THUMB, engine: str = "local"
) -> tuple[np.ndarray, np.ndarray]:
    """Decode every training image once: (descriptors (N, D) float32, thumbnails (N, T, T, 3) uint8), `meta` order.

    Descriptors feed the k-NN candidate search (`use_embeddings`), thumbnails the aligned check (`verify`; `size`:
    verify.thumb_size of `audit.verify_method`). `engine` "ray" (data.engine): `image_features` runs as a Ray Data
    map, one task per shard, across the cluster (ray_features.py; Ray must be up); the arrays are the same.
    A metadata row whose image is not in its shard raises (the shards and metadata.parquet disagree).
    """
    keys = meta["key"].astype(str).tolist()
    pos = {k: i for i, k in enumerate(keys)}
    vecs = np.zeros((len(keys), 192), np.float32)
    thumbs = np.zeros((len(keys), size, size, 3), np.uint8)
    seen = np.zeros(len(keys), bool)
    if engine == "ray":
        from .ray_features import ray_feature_rows

        for at, v, t in ray_feature_rows(shards_dir, meta, pos, size):  # (B,), (B, D), (B, T, T, 3)
            vecs[at], thumbs[at], seen[at] = v, t, True
    else:
        for key, img in _shard_images(shards_dir, meta, set(keys)):
            (vecs[pos[key]], thumbs[pos[key]]), seen[pos[key]] = image_features(img, size), True
    if not seen.all():
        missing = [keys[i] for i in np.flatnonzero(~seen)[:5]]
        raise ValueError(f"{shards_dir}: {int((~seen).sum())} images of metadata.parquet not in their shards "
                         f"(first: {missing}); re-run ingest")  # fmt: skip
    return vecs, thumbs
