"""ImageFolder trees: ROOT/<class>/*.jpg (one class per folder), or ROOT/train/<class>/ + ROOT/test/<class>/.

Why it exists: it is the layout most people already have (torchvision's ImageFolder, Kaggle exports,
a folder per label sorted by hand), so it evaluates with no manifest to write. Class names are the
folder names with `_` as spaces, in sorted folder order (torchvision's label order); a `classnames.txt`
(one per line, same order) overrides them. Prompts: `templates.txt` or
`zeroshot_classification_templates.txt` if present, else CLIP's 80 ImageNet templates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..dataset import EvalDataset, load_templates
from ..images import tree_fingerprint

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}  # torchvision's list
SPLITS = ("train", "val", "test")


def _class_dirs(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_imagefolder(root: str | Path, name: str | None = None, with_train: bool = True) -> EvalDataset:
    """Read an ImageFolder tree; the train/test split layout gives the probe its split."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory (an ImageFolder dataset is ROOT/<class name>/<images>)")
    top = _class_dirs(root)
    split_layout = "test" in top and set(top) <= set(SPLITS)
    if not split_layout and set(top) & set(SPLITS) and set(top) <= set(SPLITS):
        raise FileNotFoundError(f"{root}: has {top} but no test/ folder; a split ImageFolder needs test/<class>/")
    if split_layout:
        parts = [(s, root / s) for s in SPLITS if s in top and (with_train or s == "test")]
    else:
        parts = [("all", root)]
    folders = sorted({c for _, d in parts for c in _class_dirs(d)})
    if not folders:
        raise FileNotFoundError(f"{root}: no class folders (expected {root}/<class name>/*.jpg)")
    classnames = [f.replace("_", " ") for f in folders]
    override = root / "classnames.txt"
    if override.exists():
        classnames = [c.strip() for c in override.read_text().splitlines() if c.strip()]
        if len(classnames) != len(folders):
            raise ValueError(f"{override}: {len(classnames)} names for {len(folders)} class folders ({folders[:5]}...)")
    templates = load_templates("imagenet")
    for t in ("templates.txt", "zeroshot_classification_templates.txt"):
        if (root / t).exists():
            templates = load_templates(root / t)
            break

    images, labels, split = [], [], []
    for s, d in parts:
        first = len(images)
        for label, folder in enumerate(folders):
            if not (d / folder).is_dir():
                continue
            files = sorted(p for p in (d / folder).rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
            images += [str(p) for p in files]
            labels += [label] * len(files)
        if len(images) == first:
            raise ValueError(f"{d}: no images ({', '.join(sorted(IMAGE_EXTS))}) in its class folders; a split must not be empty")
        split += [s] * (len(images) - first)
    return EvalDataset(
        name=name or root.name,
        root=str(root),
        images=images,
        labels=np.array(labels, dtype=np.int64),
        classnames=classnames,
        templates=templates,
        split=np.array(split) if split_layout else None,
        keys=[str(Path(p).relative_to(root)) for p in images],
        eval_split="test" if split_layout else None,
        fingerprint=tree_fingerprint(root, "imagefolder", str(with_train)),
        format="imagefolder",
    )
