"""Scene sampling and paraphrased captions for the synthetic dataset."""

from __future__ import annotations

import re

import numpy as np

from components.data.config import COLOURS, SHAPES
from components.data.render import BACKGROUNDS, POSITIONS, SIZES, Scene

SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "round shape", "disc"),
    "square": ("square", "box", "square shape"),
    "triangle": ("triangle", "three-sided shape"),
    "star": ("star", "star shape"),
    "cross": ("cross", "plus sign"),
    "ring": ("ring", "hollow circle", "donut shape"),
    "diamond": ("diamond", "rhombus"),
    "hexagon": ("hexagon", "six-sided shape"),
}
WHERE: dict[str, tuple[str, ...]] = {
    "top left": ("in the top left", "in the upper left corner"),
    "top": ("at the top", "near the top edge"),
    "top right": ("in the top right", "in the upper right corner"),
    "left": ("on the left", "at the left side"),
    "center": ("in the center", "in the middle"),
    "right": ("on the right", "at the right side"),
    "bottom left": ("in the bottom left", "in the lower left corner"),
    "bottom": ("at the bottom", "near the bottom edge"),
    "bottom right": ("in the bottom right", "in the lower right corner"),
}
BG_WORDS: dict[str, tuple[str, ...]] = {
    "plain": ("plain", "solid", "flat"),
    "striped": ("striped", "stripy"),
    "dotted": ("dotted", "polka-dot"),
    "gradient": ("gradient", "shaded"),
}
TEMPLATES: tuple[str, ...] = (
    "a {size} {colour} {shape} {where}",
    "{colour} {shape} on a {bg} background",
    "a {colour} {shape} {where} on a {bg} background",
    "a picture of a {size} {colour} {shape}",
    "{size} {colour} {shape}, {bg} background",
    "there is a {colour} {shape} {where}",
    "a {bg} background with a {size} {colour} {shape} {where}",
    "one {colour} {shape}",
    "a photo of a {colour} {shape}",
    "a {shape} coloured {colour}, {size}, {where}",
)


def sample_scene(
    rng: np.random.Generator,
    heldout: frozenset[tuple[str, str]] = frozenset(),
    *,
    shape: str | None = None,
    colour: str | None = None,
    background: str | None = None,
    background_bias: float = 0.0,
    style: str = "filled",
) -> Scene:
    """Draw a scene; fixed attributes are kept, `(colour, shape)` pairs in `heldout` are never drawn."""
    if shape is None:
        shapes = [s for s in SHAPES if colour is None or (colour, s) not in heldout]
        shape = shapes[rng.integers(len(shapes))]
    shp = shape
    allowed = [c for c in COLOURS if (c, shp) not in heldout]
    if colour is not None and colour not in allowed:
        raise ValueError(f"{colour} {shp} is held out")
    col = colour or allowed[rng.integers(len(allowed))]
    if background is None:
        # spurious correlation for the bias probe: each shape prefers one background family
        preferred = BACKGROUNDS[SHAPES.index(shp) % len(BACKGROUNDS)]
        background = preferred if rng.random() < background_bias else BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    return Scene(
        shape=shp,
        colour=col,
        size=SIZES[rng.integers(len(SIZES))],
        position=POSITIONS[rng.integers(len(POSITIONS))],
        background=background,
        style=style,
        rotation=float(rng.uniform(-0.3, 0.3)),
        jitter=(float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.03, 0.03))),
        tint=tuple(int(v) for v in rng.integers(-15, 16, size=3)),
        bg_seed=int(rng.integers(2**31)),
    )


def caption(scene: Scene, rng: np.random.Generator, template: int | None = None) -> str:
    """One caption of `scene` from a paraphrase template (canonical shape word 60% of the time)."""
    t = TEMPLATES[rng.integers(len(TEMPLATES)) if template is None else template]
    words = SHAPE_WORDS[scene.shape]
    shape = words[0] if rng.random() < 0.6 else words[rng.integers(len(words))]
    text = t.format(
        size=scene.size,
        colour=scene.colour,
        shape=shape,
        where=WHERE[scene.position][rng.integers(2)],
        bg=BG_WORDS[scene.background][rng.integers(len(BG_WORDS[scene.background]))],
    )
    return re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", text)  # "an orange", "an upper"


def captions(scene: Scene, rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct captions of one scene, each from a different template."""
    picks = rng.choice(len(TEMPLATES), size=n, replace=False)
    return [caption(scene, rng, int(t)) for t in picks]
