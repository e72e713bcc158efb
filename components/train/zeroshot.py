"""Minimal in-training zero-shot top-1 on one manifest directory (manifest.csv, classnames.txt, templates.txt).

Deliberately small: a progress signal during training only (the evaluate stage scores the model fully). The
directory is read by the evaluation's one manifest reader (`components.evaluate.dataset`).
"""

from __future__ import annotations

from collections.abc import Callable

import fsspec
import torch
from PIL import Image

from components.evaluate.dataset import load_eval_dataset


def load_eval_dir(url: str, max_images: int = 1000) -> tuple[list[str], list[str], list[tuple[str, int]]]:
    """(class names, templates, [(image URL, label)]) of an eval directory on any fsspec URL (templates: `{c}`
    without a templates.txt)."""
    ds = load_eval_dataset(url, default_templates=["{c}"])
    if ds.labels is None:
        raise ValueError(f"{url}/manifest.csv: in-training zero-shot needs a 'label' column on every row")
    return ds.classnames, ds.templates or ["{c}"], list(zip(ds.images[:max_images], ds.labels[:max_images].tolist()))


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
