"""What colour differences between a copy and its original look like (align.EccVerifier's pair comparisons): whether
an image is grey, how saturated it is, how much colour detail it keeps, and its colour as JPEG leaves it. Plain numpy
and OpenCV filters; written here because they are definitions of this verifier, not image operations a library names."""

from __future__ import annotations

import cv2
import numpy as np

from .screen import LUMA

# JPEG keeps colour at half resolution and quantises it hardest (4:2:0): each colour pair is also scored, under the
# map that fits it best, with both images' colour (RGB minus luma) blurred by CHROMA_BLUR px, luma kept sharp.
# Real-image benchmark, 9.5k, 3 seeds (2026-12-02): JPEG q30-90 81 -> 88 of 90 (87 with align.JPEG_DETAIL's gate; strongly
# compressed 32 px photo tiles), +1 each upscale + JPEG, brightness, rotation; +4 false pairs, no clean eval image
# added (2 px: +1 true; 4 px: +9; 10 px: +12 and +2 clean images; scoring it under every map: the same verdicts,
# slower).
CHROMA_BLUR = 6.0


def is_grey(x: np.ndarray) -> bool:
    """Whether an (S, S, 3) uint8 image is grey: its channels differ by < 2 levels on average."""
    x = x.astype(np.int16)
    return float(np.abs(x[..., 0] - x[..., 1]).mean() + np.abs(x[..., 1] - x[..., 2]).mean()) < 2.0


def saturation(x: np.ndarray) -> float:
    """Mean |RGB - luma| of an (S, S, 3) image: how far from grey it is."""
    f = x.astype(np.float32)
    return float(np.abs(f - (f @ LUMA)[..., None]).mean())


def colour_detail(f: np.ndarray) -> float:
    """Mean |colour - colour blurred 3 px| of an (S, S, 3) float32 image (colour: RGB minus luma)."""
    c = f - (f @ LUMA)[..., None]
    return float(np.abs(c - cv2.GaussianBlur(c, (0, 0), 3.0)).mean())


def soft_chroma(f: np.ndarray) -> np.ndarray:
    """(S, S, 3) float32: luma kept, colour (RGB minus luma) blurred by CHROMA_BLUR px: what JPEG leaves of colour.
    The blur runs at a quarter of the size (CHROMA_BLUR / 4 px there, then resized back): a 49-tap kernel at full
    size cost ~0.3 ms per image."""
    s = f.shape[0]
    luma = (f @ LUMA)[..., None]
    small = cv2.resize(f - luma, (s // 4, s // 4), interpolation=cv2.INTER_AREA)
    chroma = cv2.resize(cv2.GaussianBlur(small, (0, 0), CHROMA_BLUR / 4), (s, s), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(luma + chroma, dtype=np.float32)


__all__ = ["CHROMA_BLUR", "colour_detail", "is_grey", "saturation", "soft_chroma"]
