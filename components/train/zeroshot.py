"""Minimal in-training zero-shot top-1 on one eval directory (manifest.csv, classnames.txt, templates.txt).

Deliberately small: a progress signal during training only. TODO(lead): swap for
`components.evaluate` zero-shot once that lands; the directory format is the shared one.
"""

from __future__ import annotations

import csv
import io
import posixpath
from collections.abc import Callable

import fsspec
import torch
from PIL import Image


def load_eval_dir(url: str, max_images: int = 1000) -> tuple[list[str], list[str], list[tuple[str, int]]]:
    """(class names, templates, [(image URL, label)]) of an eval directory on any fsspec URL."""
    fs, root = fsspec.core.url_to_fs(url)
    classnames = fs.cat_file(posixpath.join(root, "classnames.txt")).decode().splitlines()
    templates = [t for t in fs.cat_file(posixpath.join(root, "templates.txt")).decode().splitlines() if t.strip()]
    rows = list(csv.DictReader(io.StringIO(fs.cat_file(posixpath.join(root, "manifest.csv")).decode())))[:max_images]
    items = []
    for r in rows:
        img = r["image"]
        items.append((img if ("://" in img or img.startswith("/")) else posixpath.join(root, img), int(r["label"])))
    return [c for c in classnames if c.strip()], templates or ["{c}"], items


@torch.no_grad()
def zero_shot_top1(
    model: torch.nn.Module,
    tokenize: Callable[[list[str]], torch.Tensor],
    transform: Callable,
    url: str,
    device: torch.device,
    batch_size: int = 256,
) -> float:
    """Top-1 accuracy: each image's nearest class embedding (mean of normalised template embeddings)."""
    classnames, templates, items = load_eval_dir(url)
    was_training = model.training
    model.eval()
    dtype = next(model.parameters()).dtype
    class_emb = []
    for c in classnames:
        t = model.encode_text(tokenize([tpl.replace("{c}", c) for tpl in templates]).to(device), normalize=True)
        class_emb.append(torch.nn.functional.normalize(t.float().mean(0), dim=-1))
    classes = torch.stack(class_emb)  # (C, D)
    correct = 0
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        imgs = []
        for path, _ in chunk:
            with fsspec.open(path, "rb") as f:
                imgs.append(transform(Image.open(f).convert("RGB")))
        feats = model.encode_image(torch.stack(imgs).to(device, dtype), normalize=True).float()  # (B, D)
        pred = (feats @ classes.T).argmax(-1).cpu()
        correct += int((pred == torch.tensor([y for _, y in chunk])).sum())
    model.train(was_training)
    return correct / max(1, len(items))
