"""A small synthetic image set with planted near-duplicates (resize, JPEG, crop, colour jitter) for audit tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

TRANSFORMS = ("resize", "jpeg", "crop", "colour_jitter")


def base_image(rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A random smooth colour field with three random discs."""
    img = Image.fromarray(rng.uniform(0, 255, (8, 8, 3)).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x, y = rng.integers(0, size, 2)
        r = int(rng.integers(6, 20))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return img


def transform(img: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """The data synth's planted-duplicate transforms: 5/4 upscale, JPEG q70, 1/16 crop, colour jitter."""
    s = img.size[0]
    if kind == "resize":
        return img.resize((s * 5 // 4, s * 5 // 4), Image.Resampling.BICUBIC)
    if kind == "jpeg":
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=70)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if kind == "crop":
        m = s // 16
        left, top = (int(v) for v in rng.integers(0, m + 1, 2))
        return img.crop((left, top, s - (m - left), s - (m - top))).resize((s, s), Image.Resampling.BICUBIC)
    arr = np.asarray(img, np.float32) * rng.uniform(1.05, 1.15) + rng.uniform(-8, 8, 3)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def planted_set(n: int, n_dup: int, seed: int = 0) -> tuple[list[Image.Image], list[Image.Image], list[int]]:
    """(n distinct train images, n_dup transformed copies, index of each copy's source), transforms cycled."""
    rng = np.random.default_rng(seed)
    train = [base_image(rng) for _ in range(n)]
    src = [int(v) for v in rng.choice(n, n_dup, replace=False)]
    dups = [transform(train[i], TRANSFORMS[t % 4], rng) for t, i in enumerate(src)]
    return train, dups, src
