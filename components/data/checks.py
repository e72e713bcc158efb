"""Per-sample decoding and checks (runs in worker processes): caption rules, image decode, bomb/aspect limits, sha256, pHash."""

from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFile
from scipy.fft import dct

from components.data.config import IngestConfig
from components.data.storage import member_bytes
from components.data.tarstream import SHARD_IMAGE_EXTS

EXT_OF = {"jpeg": "jpg", "png": "png", "webp": "webp"}
IMAGE_EXTS = (*SHARD_IMAGE_EXTS, "bmp", "gif", "tif", "tiff", "image")  # ingest reads more than shards hold


@dataclass
class RawSample:
    """One sample before decoding: member bytes by extension, or the problem found while reading it."""

    source: str
    key: str
    files: dict[str, bytes] = field(default_factory=dict)
    reason: str | None = None
    detail: str = ""
    namespace: str = ""  # the source's tag (sources.source_tag): ingested keys are NAMESPACE_KEY


def ingested_key(namespace: str, key: str) -> str:
    """The key a sample gets in the ingested data: keys are names inside one source (every img2dataset download
    numbers from 000000000), so the source's tag makes them unique across sources; the tag has no dots or slashes.
    A dot in a manifest key becomes "_": shard readers split member names at the first dot (webdataset's convention),
    so `img.001` would never be trained; a clash this creates is quarantined as `duplicate_key`, as any other."""
    key = key.replace(".", "_")
    return f"{namespace}_{key}" if namespace else key


@dataclass(frozen=True)
class Good:
    """A sample that passed every check: its metadata row and its normalised tar members (image, .txt, .json)."""

    source: str
    key: str
    info: dict
    members: bytes


@dataclass(frozen=True)
class Bad:
    """A quarantined sample."""

    source: str
    key: str
    reason: str
    detail: str


def phash(img: Image.Image) -> str:
    """64-bit perceptual hash as 16 hex chars: 32x32 grey, 2-D DCT-II, 8x8 low band > its median.

    Same recipe and bit order as `imagehash.phash` (not installed here), computed with scipy.
    """
    g = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = dct(dct(g, axis=0), axis=1)[:8, :8]
    return np.packbits(low.flatten() > np.median(low)).tobytes().hex()


def clean_caption(text: str) -> str:
    """NFC, whitespace collapsed and stripped."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def configure_pil(cfg: IngestConfig) -> None:
    """PIL limits for this process: bombs raise instead of warning, truncated files never half-load."""
    Image.MAX_IMAGE_PIXELS = cfg.max_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def check_sample(s: RawSample, cfg: IngestConfig) -> Good | Bad:
    """Decode and check one sample; every failure becomes a `Bad` with a reason, never an exception."""
    if s.reason:
        return Bad(s.source, s.key, s.reason, s.detail)
    img_ext = next((e for e in IMAGE_EXTS if e in s.files), None)
    if img_ext is None:
        return Bad(s.source, s.key, "missing_image", f"members: {sorted(s.files) or 'none'}")
    if "txt" not in s.files:
        return Bad(s.source, s.key, "missing_caption", f"members: {sorted(s.files)}")
    try:
        text = s.files["txt"].decode("utf-8")
    except UnicodeDecodeError as e:
        return Bad(s.source, s.key, "non_utf8_caption", str(e))
    text = clean_caption(text)
    if len(text) < max(1, cfg.min_caption_chars):
        return Bad(s.source, s.key, "empty_caption", f"{len(text)} chars after stripping")
    if len(text) > cfg.max_caption_chars:
        return Bad(s.source, s.key, "caption_too_long", f"{len(text)} chars > {cfg.max_caption_chars}")
    data = s.files[img_ext]
    if not data:
        return Bad(s.source, s.key, "zero_byte_image", f"{s.key}.{img_ext} is empty")
    try:
        return _check_image(s, text, data, cfg)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return Bad(s.source, s.key, "decompression_bomb", str(e))
    except Exception as e:  # PIL raises many types for broken files
        msg = re.sub(r" at 0x[0-9a-fA-F]+", "", f"{type(e).__name__}: {e}")  # no object addresses: reruns compare equal
        return Bad(s.source, s.key, "truncated_image" if "truncat" in msg.lower() else "undecodable_image", msg)


def _check_image(s: RawSample, text: str, data: bytes, cfg: IngestConfig) -> Good | Bad:
    img = Image.open(io.BytesIO(data))
    w, h = img.size  # header only: limits are checked before any pixel is decoded
    if w * h > cfg.max_pixels:
        return Bad(s.source, s.key, "decompression_bomb", f"{w}x{h} = {w * h} pixels > {cfg.max_pixels}")
    if min(w, h) < cfg.min_side:
        return Bad(s.source, s.key, "image_too_small", f"{w}x{h}, min side {cfg.min_side}")
    if max(w, h) / min(w, h) > cfg.max_aspect_ratio:
        return Bad(s.source, s.key, "bad_aspect_ratio", f"{w}x{h}, ratio {max(w, h) / min(w, h):.1f} > {cfg.max_aspect_ratio}")
    fmt = (img.format or "").lower()
    img.load()
    if fmt not in cfg.allowed_formats or img.mode not in ("RGB", "L", "RGBA", "P", "LA"):
        # other formats/modes (GIF, BMP, CMYK, 16-bit) are normalised to 8-bit RGB PNG
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="PNG")
        data, fmt = buf.getvalue(), "png"
    key = ingested_key(s.namespace, s.key)
    info = {"key": key, "source_key": s.key, "caption": text, "width": w, "height": h, "format": fmt, "bytes": len(data),
            "source_shard": s.source, "sha256": hashlib.sha256(data).hexdigest(), "phash": phash(img)}  # fmt: skip
    # the output tar members are built here, in the worker, so the main process only copies bytes
    members = [(f"{key}.{EXT_OF[fmt]}", data), (f"{key}.txt", text.encode()), (f"{key}.json", json.dumps(info).encode())]
    return Good(s.source, key, info, b"".join(member_bytes(n, d) for n, d in members))


def check_batch(batch: list[RawSample], cfg: IngestConfig) -> list[Good | Bad]:
    """A worker task: configure PIL for this process and check each sample in order."""
    configure_pil(cfg)
    return [check_sample(s, cfg) for s in batch]
