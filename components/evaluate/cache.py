"""Embedding cache: each eval image is encoded once per (dataset, split, checkpoint, transform, precision)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from clip_core import image_transform
from components.io import create_temp_beside, publish_file

from .images import FileImages, ImageSource, IndexedImages, StreamedImages, decode_image
from .images import open_image as open_image  # re-exported: callers imported it from here before images.py

log = logging.getLogger(__name__)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Content hash of a file (the checkpoint's identity in cache keys)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class _IndexedDataset(Dataset):
    """An indexed source through a transform -> (tensor, index, error); an unreadable image gives a blank and its error."""

    def __init__(self, source: IndexedImages, transform: Callable):
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str]:
        try:
            return self.transform(self.source.load(i)), i, ""
        except UNREADABLE as e:
            return self.transform(BLANK), i, f"{_location(self.source, i)}: {type(e).__name__}: {e}"


class _StreamedDataset(IterableDataset):
    """A streamed source through a transform; DataLoader workers split it (by shard) and rows carry their index."""

    def __init__(self, source: StreamedImages, transform: Callable):
        self.source, self.transform = source, transform

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int, str]]:
        info = get_worker_info()
        return self.rows(*((info.id, info.num_workers) if info is not None else (0, 1)))

    def rows(self, worker: int, n: int) -> Iterator[tuple[torch.Tensor, int, str]]:
        """Worker `worker` of `n`'s share (also what each Ray Data task reads, ray_encoder.py)."""
        for i, data in self.source.stream(worker, n):
            try:
                if isinstance(data, Exception):
                    raise data
                yield self.transform(decode_image(data)), i, ""
            except UNREADABLE as e:
                yield self.transform(BLANK), i, f"{_location(self.source, i)}: {type(e).__name__}: {e}"


# what a broken or truncated image raises in PIL (UnidentifiedImageError is an OSError), or a missing file
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
BLANK = Image.new("RGB", (32, 32))  # stands in for an unreadable image so the batch keeps its shape


def _location(source: object, i: int) -> str:
    locations = getattr(source, "locations", None)
    return str(locations[i]) if locations is not None else f"image {i}"


def as_source(images: Sequence[str] | ImageSource) -> ImageSource:
    """A list of paths/URLs becomes a FileImages source; a source passes through."""
    return images if isinstance(images, (IndexedImages, StreamedImages)) else FileImages(images)


def valid_rows(features: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N,) bool: rows of images that decoded (`encode_images` leaves NaN rows for the others)."""
    return ~np.isnan(np.asarray(features)).any(axis=1)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU or CUDA, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def encode_images(
    model: torch.nn.Module,
    images: Sequence[str] | ImageSource,
    transform: Callable | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    precision: str = "fp32",
    progress: bool = False,
    desc: str = "encode",
) -> torch.Tensor:
    """Encode images (paths/URLs or an ImageSource) -> (N, D) float32 L2-normalised features, source order.

    An image that cannot be decoded gives a NaN row (see `valid_rows`) and one warning line naming it:
    the caller counts and reports it; the run goes on.
    """
    device = next(model.parameters()).device
    transform = transform or eval_transform(model)
    source = as_source(images)
    on_cuda = device.type == "cuda"
    if isinstance(source, StreamedImages):
        data: Dataset = _StreamedDataset(source, transform)
    else:
        data = _IndexedDataset(source, transform)
    # pinned host batches copy to the GPU asynchronously, overlapping the next batch's decode
    loader = DataLoader(data, batch_size=batch_size, num_workers=num_workers, shuffle=False, pin_memory=on_cuda)
    if progress:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc=desc, unit="batch", total=-(-len(source) // batch_size))
    was_training = model.training
    model.eval()
    out = torch.full((len(source), model.cfg.embed_dim), float("nan"), device=device)  # (N, D)
    seen = torch.zeros(len(source), dtype=torch.bool)
    for x, idx, errors in loader:
        with autocast(device, precision):
            feats = model.encode_image(x.to(device, non_blocking=on_cuda))  # (B, D)
        ok = torch.tensor([not e for e in errors])
        out[idx[ok].to(device)] = F.normalize(feats.float(), dim=-1)[ok.to(device)]  # stays on the device: no sync
        seen[idx] = True
        for e in errors:
            if e:
                log.warning("%s: unreadable image skipped (%s)", desc, e)
    model.train(was_training)
    if not seen.all():  # a streamed source that yielded fewer rows than it announced
        log.warning("%s: %d image(s) never delivered by the source; counted as unreadable", desc, int((~seen).sum()))
    return out.cpu()


@torch.no_grad()
def encode_texts(
    model: torch.nn.Module, tokenizer: Callable, texts: Sequence[str], batch_size: int = 256, precision: str = "fp32"
) -> torch.Tensor:
    """Encode texts -> (N, D) float32 L2-normalised features."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(texts), batch_size):
        tokens = tokenizer(list(texts[i : i + batch_size])).to(device)
        with autocast(device, precision):
            feats = model.encode_text(tokens)  # (B, D)
        out.append(F.normalize(feats.float(), dim=-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, model.cfg.embed_dim)


def cache_key(
    dataset: str, split: str, checkpoint_sha256: str, transform: dict, precision: str, manifest_sha256: str = ""
) -> str:
    """A file-name-safe key; any change of checkpoint, transform, precision or dataset fingerprint gives a new key.

    `manifest_sha256` is the dataset's fingerprint: the manifest's sha256 for manifest directories (so
    their keys are what they always were), the readers' `EvalDataset.fingerprint` for other formats.
    """
    spec = json.dumps(
        {"ckpt": checkpoint_sha256, "transform": transform, "precision": precision, "manifest": manifest_sha256},
        sort_keys=True,
    )
    return f"{dataset}__{split}__{checkpoint_sha256[:12]}__{hashlib.sha256(spec.encode()).hexdigest()[:12]}"


class EmbeddingCache:
    """Features as `<key>.safetensors` files under one directory, written atomically."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return self.root / f"{key}.safetensors"

    def load(self, key: str) -> torch.Tensor | None:
        from safetensors.torch import load_file

        p = self.path(key)
        return load_file(str(p))["features"] if p.exists() else None

    def save(self, key: str, features: torch.Tensor, meta: dict[str, str] | None = None) -> Path:
        from safetensors.torch import save_file

        self.root.mkdir(parents=True, exist_ok=True)
        tmp = create_temp_beside(self.path(key))
        try:
            save_file({"features": features.contiguous()}, tmp, metadata=meta or {})
            publish_file(tmp, self.path(key))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return self.path(key)

    def get_or_compute(self, key: str, compute: Callable[[], torch.Tensor], meta: dict[str, str] | None = None) -> torch.Tensor:
        """Cached features, or compute, store and return them."""
        feats = self.load(key)
        if feats is not None:
            self.hits += 1
            return feats
        self.misses += 1
        feats = compute()
        self.save(key, feats, meta)
        return feats


def _preprocess(model: torch.nn.Module):
    """The model's own preprocessing (`model.preprocess`, set by `load_model_dir` from preprocess.json), or None."""
    from clip_core.transforms import PreprocessConfig

    pre = getattr(model, "preprocess", None)
    return pre if isinstance(pre, PreprocessConfig) else None


def eval_transform(model: torch.nn.Module) -> Callable:
    """The eval transform of `model`: its own preprocessing when it carries one (open_clip's preprocess_cfg), else CLIP's."""
    from clip_core.transforms import preprocess_transform

    pre = _preprocess(model)
    return preprocess_transform(pre) if pre is not None else image_transform(model.cfg.vision_cfg.image_size, is_train=False)


def transform_spec(model: torch.nn.Module) -> dict:
    """What defines the eval transform (part of the cache key)."""
    from clip_core.transforms import OPENAI_MEAN, OPENAI_STD, PreprocessConfig

    spec = {
        "image_size": model.cfg.vision_cfg.image_size,
        "mean": OPENAI_MEAN,
        "std": OPENAI_STD,
        "resize": "bicubic+center_crop",
    }
    pre = _preprocess(model)
    # only a non-default preprocessing enters the key, so caches written before preprocess.json existed stay valid
    if pre is not None and pre != PreprocessConfig(size=spec["image_size"]):
        spec["preprocess"] = pre.to_dict()
    return spec


def cached_image_features(
    cache: EmbeddingCache,
    model: torch.nn.Module,
    checkpoint_sha256: str,
    dataset: str,
    images: Sequence[str] | ImageSource,
    split: str = "all",
    manifest_sha256: str = "",
    batch_size: int = 64,
    num_workers: int = 0,
    precision: str = "fp32",
    progress: bool = False,
    encode: Callable[..., torch.Tensor] = encode_images,
) -> np.ndarray:
    """(N, D) normalised float32 features of `images`, from the cache or encoded once and stored.

    Unreadable images are NaN rows (stored as such, so a cache hit reports them again; see `valid_rows`).
    """
    n = len(images)
    key = cache_key(dataset, split, checkpoint_sha256, transform_spec(model), precision, manifest_sha256)
    meta = {
        "dataset": dataset,
        "split": split,
        "checkpoint_sha256": checkpoint_sha256,
        "precision": precision,
        "n": str(n),
    }

    def compute() -> torch.Tensor:
        return encode(
            model, images, batch_size=batch_size, num_workers=num_workers, precision=precision, progress=progress, desc=dataset
        )

    feats = cache.get_or_compute(key, compute, meta)
    if feats.shape[0] != n:
        raise ValueError(f"{cache.path(key)}: holds {feats.shape[0]} rows for {n} images; delete it and re-run")
    return feats.numpy()


def cached_text_features(
    cache: EmbeddingCache,
    model: torch.nn.Module,
    tokenizer: Callable,
    model_id: str,
    name: str,
    texts: Sequence[str],
    precision: str = "fp32",
) -> torch.Tensor:
    """(N, D) normalised text features (prompts, captions), from the cache or encoded once and stored.

    `model_id` must identify weights and tokenizer together (e.g. both files' sha256).
    """
    digest = hashlib.sha256(json.dumps([model_id, precision, list(texts)]).encode()).hexdigest()
    key = f"{name}__text__{model_id[:12]}__{digest[:12]}"
    meta = {"texts": name, "model_id": model_id, "precision": precision, "n": str(len(texts))}
    return cache.get_or_compute(key, lambda: encode_texts(model, tokenizer, texts, precision=precision), meta)
