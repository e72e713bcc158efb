"""Tiny coloured-shapes webdataset shards and eval dir: the caption names the colour, so CLIP can learn it."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import webdataset as wds
from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 220),
    "yellow": (230, 220, 40),
    "purple": (140, 40, 180),
    "orange": (240, 140, 20),
    "white": (245, 245, 245),
    "black": (10, 10, 10),
}
SHAPES = ("circle", "square", "triangle")


def draw(colour: str, shape: str, rng: random.Random, size: int = 32) -> Image.Image:
    """One image: a coloured shape at a random place and size on a grey, slightly noisy background."""
    g = rng.randint(100, 150)
    img = Image.new("RGB", (size, size), (g, g, g))
    d = ImageDraw.Draw(img)
    r = rng.randint(size // 4, size // 2 - 2)
    cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
    box = (cx - r, cy - r, cx + r, cy + r)
    fill = COLOURS[colour]
    if shape == "circle":
        d.ellipse(box, fill=fill)
    elif shape == "square":
        d.rectangle(box, fill=fill)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return img


def write_shape_shards(out_dir: str | Path, n_shards: int = 4, per_shard: int = 64, seed: int = 0) -> list[str]:
    """img2dataset-style shards `shard-%06d.tar` (KEY.png, KEY.txt, KEY.json); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for s in range(n_shards):
        path = out / f"shard-{s:06d}.tar"
        with wds.TarWriter(str(path)) as w:
            for i in range(per_shard):
                colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
                buf = io.BytesIO()
                draw(colour, shape, rng).save(buf, format="PNG")
                key = f"{s:05d}{i:04d}"
                w.write(
                    {
                        "__key__": key,
                        "png": buf.getvalue(),
                        "txt": f"a {colour} {shape}",
                        "json": json.dumps({"colour": colour, "shape": shape}).encode(),
                    }
                )
        paths.append(str(path))
    return paths


def write_colour_eval(out_dir: str | Path, n: int = 160, seed: int = 1) -> Path:
    """An eval directory in the shared format: classify the colour of a shape (8 classes)."""
    return write_eval(out_dir, "colour", n, seed)


def write_eval(out_dir: str | Path, kind: str, n: int = 160, seed: int = 1) -> Path:
    """An eval directory in the shared format; `kind` "colour" (8 classes) or "shape" (3 classes)."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    names = list(COLOURS) if kind == "colour" else list(SHAPES)
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label"])
        for i in range(n):
            label = i % len(names)
            colour, shape = (names[label], rng.choice(SHAPES)) if kind == "colour" else (rng.choice(list(COLOURS)), names[label])
            draw(colour, shape, rng).save(out / "images" / f"{i:05d}.png")
            w.writerow([f"images/{i:05d}.png", label])
    (out / "classnames.txt").write_text("\n".join(names) + "\n")
    others = SHAPES if kind == "colour" else list(COLOURS)
    lines = [f"a {{c}} {o}" if kind == "colour" else f"a {o} {{c}}" for o in others]
    (out / "templates.txt").write_text("\n".join(lines) + "\n")
    (out / "dataset.json").write_text(json.dumps({"name": f"shape-{kind}s", "task": "classification", "shift_of": None}))
    return out
