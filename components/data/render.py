"""Vectorised numpy rendering of the synthetic shapes: implicit shape masks, textures, 2x supersampling."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from components.data.config import COLOURS, SHAPES

RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 215, 30),
    "green": (40, 165, 55),
    "cyan": (30, 200, 215),
    "blue": (35, 70, 215),
    "purple": (135, 50, 185),
    "pink": (245, 125, 190),
}
assert tuple(RGB) == COLOURS
SIZES: tuple[str, ...] = ("small", "large")
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right",
)  # fmt: skip
BACKGROUNDS: tuple[str, ...] = ("plain", "striped", "dotted", "gradient")
# styles used only by evaluation sets (distribution shift): never in training
SHIFT_STYLES: tuple[str, ...] = ("outline", "sketch", "noise")


@dataclass(frozen=True)
class Scene:
    """Everything that determines one rendered image (and its captions)."""

    shape: str
    colour: str
    size: str
    position: str
    background: str
    style: str = "filled"  # filled | outline | sketch | noise
    rotation: float = 0.0  # radians
    jitter: tuple[float, float] = (0.0, 0.0)  # centre offset, fraction of the image size
    tint: tuple[int, int, int] = (0, 0, 0)  # per-image colour jitter added to the named colour
    bg_seed: int = 0  # drives the background's random parameters


def _unit_mask(shape: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Inside-test of the unit-size shape centred at 0 (y points down). Returns bool, same shape as x."""
    r = np.hypot(x, y)
    if shape == "circle":
        return r <= 1.0
    if shape == "ring":
        return (r <= 1.0) & (r >= 0.58)
    if shape == "square":
        return np.maximum(np.abs(x), np.abs(y)) <= 0.82
    if shape == "diamond":
        return np.abs(x) + np.abs(y) <= 1.05
    if shape == "cross":
        return ((np.abs(x) <= 0.3) & (np.abs(y) <= 1.0)) | ((np.abs(y) <= 0.3) & (np.abs(x) <= 1.0))
    if shape in ("triangle", "hexagon"):
        k, d = (3, 0.55) if shape == "triangle" else (6, 0.88)
        inside = np.ones_like(x, dtype=bool)
        for i in range(k):
            a = np.pi / 2 + 2 * np.pi * i / k  # outward edge normals; the first edge is the bottom one
            inside &= x * np.cos(a) + y * np.sin(a) <= d
        return inside
    if shape == "star":
        theta = np.arctan2(y, x)
        t = np.abs(np.mod(theta + np.pi / 2, 2 * np.pi / 5) - np.pi / 5) / (np.pi / 5)  # 1 at the five points
        return r <= 0.42 + 0.63 * t
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


@lru_cache(maxsize=4)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(n, dtype=np.float32) + 0.5) / n  # pixel centres in [0, 1]
    return np.meshgrid(c, c)  # (n, n) each: x, y


def shape_alpha(scene: Scene, size: int) -> np.ndarray:
    """Anti-aliased coverage of the shape, (size, size) float32 in [0, 1] (2x supersampled)."""
    col, row = POSITIONS.index(scene.position) % 3, POSITIONS.index(scene.position) // 3
    cx = (0.27, 0.5, 0.73)[col] + scene.jitter[0]
    cy = (0.27, 0.5, 0.73)[row] + scene.jitter[1]
    radius = 0.12 if scene.size == "small" else 0.21
    # only the shape's bounding box is evaluated (unit shapes fit in radius 1.2, any rotation)
    x0, x1 = max(0, int((cx - 1.2 * radius) * size)), min(size, int(np.ceil((cx + 1.2 * radius) * size)))
    y0, y1 = max(0, int((cy - 1.2 * radius) * size)), min(size, int(np.ceil((cy + 1.2 * radius) * size)))
    X, Y = _grid(2 * size)
    X, Y = X[2 * y0 : 2 * y1, 2 * x0 : 2 * x1], Y[2 * y0 : 2 * y1, 2 * x0 : 2 * x1]
    c, s = np.cos(scene.rotation), np.sin(scene.rotation)
    dx, dy = (X - cx) / radius, (Y - cy) / radius
    x, y = c * dx + s * dy, -s * dx + c * dy
    mask = _unit_mask(scene.shape, x, y)
    if scene.style in ("outline", "sketch"):
        width = 0.2 if scene.style == "outline" else 0.12
        mask &= ~_unit_mask(scene.shape, x / (1 - width), y / (1 - width))
    alpha = np.zeros((size, size), np.float32)
    alpha[y0:y1, x0:x1] = mask.astype(np.float32).reshape(y1 - y0, 2, x1 - x0, 2).mean(axis=(1, 3))
    return alpha


def background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Background texture, (size, size, 3) float32 in [0, 255]; low-saturation so colour names stay unambiguous."""
    X, Y = _grid(size)
    g1, g2 = rng.uniform(40, 215, size=2)
    while abs(g1 - g2) < 40:  # textures need visible contrast
        g2 = rng.uniform(40, 215)
    tint = rng.uniform(-8, 8, size=3).astype(np.float32)
    if kind == "plain":
        v = np.full((size, size), g1, np.float32)
    elif kind == "striped":
        a = rng.choice([0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4])
        period = rng.uniform(6, 12) / size
        phase = (X * np.cos(a) + Y * np.sin(a)) / period
        v = np.where(np.floor(phase) % 2 == 0, g1, g2).astype(np.float32)
    elif kind == "dotted":
        step = rng.uniform(6, 10) / size
        dx = np.mod(X, step) - step / 2
        dy = np.mod(Y, step) - step / 2
        v = np.where(np.hypot(dx, dy) <= 0.25 * step, g2, g1).astype(np.float32)
    elif kind == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        t = (X - 0.5) * np.cos(a) + (Y - 0.5) * np.sin(a) + 0.5
        v = (g1 + (g2 - g1) * np.clip(t, 0, 1)).astype(np.float32)
    elif kind == "noise":
        v = rng.uniform(0, 255, size=(size, size)).astype(np.float32)
        return np.repeat(v[:, :, None], 3, axis=2)
    elif kind == "white":
        return np.full((size, size, 3), 250.0, np.float32)
    else:
        raise ValueError(f"unknown background {kind!r}")
    return (v + mottle(size, rng))[:, :, None] + tint


def mottle(size: int, rng: np.random.Generator, cells: int = 6, amplitude: float = 14.0) -> np.ndarray:
    """A smooth random luminance field, (size, size) float32 in [-amplitude, amplitude]: unique per image.

    Real photographs are never pixel-level look-alikes by chance; without this, independent renders of the
    same shape, colour and position on a flat background are (the dedup audit could not tell them from
    planted copies). Grey only, so colour names stay unambiguous.
    """
    knots = rng.uniform(-amplitude, amplitude, size=(cells, cells))
    t = (np.arange(size, dtype=np.float64) + 0.5) / size * (cells - 1)  # pixel centres on the knot grid
    rows = np.stack([np.interp(t, np.arange(cells), k) for k in knots])  # (cells, size): along x
    return np.stack([np.interp(t, np.arange(cells), c) for c in rows.T], axis=1).astype(np.float32)  # (size, size)


def render(scene: Scene, size: int) -> np.ndarray:
    """The scene as an RGB uint8 array, (size, size, 3)."""
    rng = np.random.default_rng(scene.bg_seed)
    if scene.style == "sketch":  # pencil drawing: dark grey strokes on paper, no colour
        bg, fg = background("white", size, rng), np.array([40.0, 40.0, 40.0], np.float32)
    else:
        bg = background("noise" if scene.style == "noise" else scene.background, size, rng)
        fg = np.clip(np.array(RGB[scene.colour], np.float32) + np.array(scene.tint, np.float32), 0, 255)
    alpha = shape_alpha(scene, size)[:, :, None]  # (S, S, 1)
    img = bg * (1 - alpha) + fg * alpha
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)
