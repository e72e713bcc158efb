"""Test data of the filter tests: a tiny teacher trained in seconds to align colour words with colour squares, and
raw shards of matched, shuffled and built-to-fail pairs."""

from __future__ import annotations

import contextlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
           "purple": (150, 40, 170), "cyan": (30, 210, 210)}  # fmt: skip
NAMES = list(COLOURS)
# pairs built to fail one basic filter each (reason -> (caption, (width, height))), under the filters of `BASIC`
FAILING = {"caption_chars": ("red", (32, 32)), "caption_words": ("reddish-squareness", (32, 32)),
           "image_side": ("a red square", (12, 12)), "aspect_ratio": ("a red square", (64, 16))}  # fmt: skip
# one layer per tower: trains in about a second on a busy 2-core machine
MICRO = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
         "text_cfg": {"context_length": 32, "vocab_size": 1024, "width": 64, "heads": 2, "layers": 1}}  # fmt: skip
BASIC = {"min_caption_chars": 5, "min_caption_words": 2, "min_image_side": 16, "max_aspect_ratio": 3.0}


def square(colour: str, rng: np.random.Generator, size: tuple[int, int] = (32, 32)) -> Image.Image:
    w, h = size
    arr = np.clip(np.array(COLOURS[colour])[None, None] + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def caption(colour: str, j: int) -> str:
    return f"a {colour} square number {j}"  # unique per pair: a caption names its key


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread: on a 2-core machine shared with other jobs, two threads run several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_teacher(out: Path, steps: int = 60, seed: int = 0) -> Path:
    """A tiny CLIP trained contrastively on colour squares and their captions: matched pairs score high."""
    import clip_core
    from clip_core import Tokenizer, create_model, save_checkpoint
    from clip_core.config import CLIPConfig

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    corpus = [caption(c, j) for c in NAMES for j in range(100)] + [v[0] for v in FAILING.values()]
    tok = Tokenizer.train(corpus, vocab_size=300, context_length=32)
    model = create_model(CLIPConfig.from_dict(MICRO, source="filter tests"))
    tf = clip_core.image_transform(model.image_size, is_train=False)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(steps):  # callers hold one_thread()
        colours = rng.choice(len(NAMES), 16)
        x = torch.stack([tf(square(NAMES[c], rng)) for c in colours])
        t = tok([caption(NAMES[c], int(rng.integers(100))) for c in colours])
        img = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
        txt = torch.nn.functional.normalize(model.encode_text(t), dim=-1)
        same = torch.tensor(colours[:, None] == colours[None, :], dtype=torch.float32)  # repeats are positives too
        logits = 20 * img @ txt.T
        loss = -(torch.log_softmax(logits, 1) * same / same.sum(1, keepdim=True)).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model.eval(), out / "model")
    tok.save(out / "tokenizer.json")
    return out


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_pairs(root: Path, n_per_colour: int = 6, seed: int = 1) -> dict[str, str]:
    """Two raw shards of matched pairs, pairs with another colour's caption (shuffled) and the FAILING pairs.

    Returns {source key: "matched" | "shuffled" | a FAILING reason}.
    """
    rng = np.random.default_rng(seed)
    kinds, members, j = {}, [], 0
    for c, colour in enumerate(NAMES):
        for i in range(n_per_colour):
            shuffled = i % 2 == 1
            text = caption(NAMES[(c + 1 + i % 5) % len(NAMES)] if shuffled else colour, j)
            key = f"{j:05d}"
            kinds[key] = "shuffled" if shuffled else "matched"
            members += [(f"{key}.png", _png(square(colour, rng))), (f"{key}.txt", text.encode())]
            j += 1
    for reason, (text, size) in FAILING.items():
        key = f"{j:05d}"
        kinds[key] = reason
        members += [(f"{key}.png", _png(square("red", rng, size))), (f"{key}.txt", text.encode())]
        j += 1
    half = len(members) // 4 * 2
    for n, part in enumerate((members[:half], members[half:])):
        with tarfile.open(root / f"raw-{n}.tar", "w") as tar:
            for name, data in part:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return kinds
