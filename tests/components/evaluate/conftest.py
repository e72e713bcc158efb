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


# ----------------------------------------------------------------------------- the same images in every eval format
def colour_images(n_classes: int = 3, per_class: int = 4) -> dict[str, list[tuple[int, str, np.ndarray]]]:
    """{split: [(label, key, (32, 32, 3) uint8)]}, class-major; classes are sorted colour names (ImageFolder's order)."""
    names = sorted(COLORS)[:n_classes]
    out = {}
    for s, split in enumerate(("train", "test")):
        rng = np.random.default_rng(s)
        out[split] = [
            (
                label,
                f"{split}_{name}_{j}",
                np.clip(np.array(COLORS[name]) + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8),
            )
            for label, name in enumerate(names)
            for j in range(per_class)
        ]
    return out


def _png(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    import io
    import tarfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_all_formats(root: Path, n_classes: int = 3, per_class: int = 4, templates: list[str] | None = None) -> dict[str, Path]:
    """The same images as a manifest dir, CLIP_benchmark wds (2 shards per split), ImageFolder and CIFAR-10 pickles.

    `templates` default to the shipped CIFAR-10 ones: the torchvision reader uses those, so all formats match.
    """
    import pickle

    from components.evaluate.dataset import load_templates

    data, names = colour_images(n_classes, per_class), sorted(COLORS)[:n_classes]
    templates = templates or load_templates("cifar10")
    man, wds_dir, folder, cifar = root / "manifest", root / "wds", root / "imagefolder", root / "cifar"
    rows = []
    (man / "images").mkdir(parents=True)
    for split, items in data.items():
        for label, key, arr in items:
            Image.fromarray(arr).save(man / "images" / f"{key}.png")
            (folder / split / names[label]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(folder / split / names[label] / f"{key}.png")
            rows.append(f"images/{key}.png,{label},{key},{split}")
        half = len(items) // 2
        for i, part in enumerate((items[:half], items[half:])):
            members = [m for label, key, arr in part for m in ((f"{key}.png", _png(arr)), (f"{key}.cls", str(label).encode()))]
            write_tar(wds_dir / split / f"{i}.tar", members)
        (wds_dir / split / "nshards.txt").write_text("2\n")
    (man / "manifest.csv").write_text("image,label,key,split\n" + "\n".join(rows) + "\n")
    for d in (man, wds_dir):
        (d / "classnames.txt").write_text("\n".join(names) + "\n")
    (man / "templates.txt").write_text("\n".join(templates) + "\n")
    (wds_dir / "zeroshot_classification_templates.txt").write_text("\n".join(templates) + "\n")
    (folder / "templates.txt").write_text("\n".join(templates) + "\n")

    batches = cifar / "cifar-10-batches-py"
    batches.mkdir(parents=True)

    def batch(items: list) -> dict:  # CIFAR's layout: (N, 3072) uint8 rows, channel-major
        arrs = [a.transpose(2, 0, 1).reshape(-1) for _, _, a in items]
        return {"data": np.stack(arrs) if arrs else np.zeros((0, 3072), np.uint8), "labels": [label for label, _, _ in items]}

    train = data["train"]
    for i, idx in enumerate(np.array_split(np.arange(len(train)), 5), start=1):
        (batches / f"data_batch_{i}").write_bytes(pickle.dumps(batch([train[j] for j in idx])))
    (batches / "test_batch").write_bytes(pickle.dumps(batch(data["test"])))
    (batches / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return {"manifest": man, "wds": wds_dir, "imagefolder": folder, "cifar": cifar}


@pytest.fixture()
def trust_cifar_files(monkeypatch):
    """torchvision checks CIFAR files against the real ones' md5; the tests write their own."""
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)


@pytest.fixture(scope="session")
def formats():
    """Writers of the eval formats (test modules here are not a package, so they take them as a fixture)."""
    import types

    return types.SimpleNamespace(write_all=write_all_formats, write_tar=write_tar, png=_png)


def _clip_benchmark_accuracy(output, target, topk=(1,)):
    """clip_benchmark 1.6's `accuracy` with the one numpy-2.4 fix ([0] before float())."""
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    n = len(target)
    return [float(correct[:k].reshape(-1).float().sum(0, keepdim=True).cpu().numpy()[0]) / n for k in topk]


@pytest.fixture()
def clip_benchmark_numpy24(monkeypatch):
    """Parity tests: clip-benchmark 1.6's `accuracy` calls float() on a 1-element array, which numpy >= 2.4 refuses."""
    zsc = pytest.importorskip("clip_benchmark.metrics.zeroshot_classification")
    monkeypatch.setattr(zsc, "accuracy", _clip_benchmark_accuracy)
