"""Fixtures: a random-weight tiny model directory and tiny eval dataset directories built in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
          "purple": (150, 40, 170), "cyan": (30, 210, 210)}  # fmt: skip
TEMPLATES = ["a photo of a {c}.", "a {c} square.", "something {c}."]


def write_classification_dir(root: Path, name: str, per_class: int = 5, shift_of: str | None = None, seed: int = 0,
                             noise: float = 20.0, captions: bool = False) -> Path:  # fmt: skip
    """Colour squares with noise: one class per colour; PNGs of varied sizes; optional captions column."""
    rng = np.random.default_rng(seed)
    d = root / name
    (d / "images").mkdir(parents=True)
    rows = []
    for label, (cname, rgb) in enumerate(COLORS.items()):
        for j in range(per_class):
            h, w = int(rng.integers(28, 48)), int(rng.integers(28, 48))
            arr = np.clip(np.array(rgb)[None, None, :] + rng.normal(0, noise, (h, w, 3)), 0, 255).astype(np.uint8)
            rel = f"images/{cname}_{j}.png"
            Image.fromarray(arr).save(d / rel)
            caps = [f"a {cname} square", f"noisy {cname} picture number {j}"]
            rows.append({"image": rel, "label": label, "key": f"{cname}_{j}", "captions": json.dumps(caps)})
    cols = ["image", "label", "key"] + (["captions"] if captions else [])
    lines = [",".join(cols)]
    for r in rows:
        vals = [r[c] if c != "captions" else '"' + r[c].replace('"', '""') + '"' for c in cols]
        lines.append(",".join(str(v) for v in vals))
    (d / "manifest.csv").write_text("\n".join(lines) + "\n")
    (d / "classnames.txt").write_text("\n".join(COLORS) + "\n")
    (d / "templates.txt").write_text("\n".join(TEMPLATES) + "\n")
    task = "classification"
    (d / "dataset.json").write_text(json.dumps({"name": name, "task": task, "shift_of": shift_of}))
    return d


def build_tiny_model(seed: int = 0):
    """A seeded random tiny CLIP and a BPE tokenizer trained on the words the tests use."""
    from clip_core import Tokenizer, create_model

    torch.manual_seed(seed)
    model = create_model("tiny").eval()
    corpus = [t.format(c=c) for c in COLORS for t in TEMPLATES] + [
        f"noisy {c} picture number {j}" for c in COLORS for j in range(9)
    ]
    tokenizer = Tokenizer.train(corpus * 3, vocab_size=300, context_length=32)
    return model, tokenizer


def save_model_dir(model, tokenizer, d: Path) -> Path:
    from clip_core import save_checkpoint

    d.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, d / "model")
    tokenizer.save(d / "tokenizer.json")
    return d


@pytest.fixture(scope="session")
def tiny_model():
    return build_tiny_model(0)


@pytest.fixture()
def model_dir(tmp_path: Path, tiny_model) -> Path:
    return save_model_dir(*tiny_model, tmp_path / "model")


@pytest.fixture()
def eval_root(tmp_path: Path) -> Path:
    root = tmp_path / "eval"
    write_classification_dir(root, "colors", per_class=8, captions=True)
    write_classification_dir(root, "colors_noisy", per_class=4, shift_of="colors", seed=1, noise=60.0)
    return root


@pytest.fixture()
def make_classification_dir():
    """Factory: write_classification_dir(root, name, ...)."""
    return write_classification_dir


@pytest.fixture(scope="session")
def model_factory():
    """Factory: (build_tiny_model, save_model_dir)."""
    return build_tiny_model, save_model_dir
