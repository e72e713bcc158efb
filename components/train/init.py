"""Starting weights (train.init_from): read a model directory's weights, check they fit the run's model, load them."""

from __future__ import annotations

import contextlib
import hashlib
import math
import posixpath
import tempfile
from pathlib import Path

import fsspec
import torch

import clip_core
from components.io import absolute, is_url

from .config import TrainConfig


def read_init_state(url: str) -> dict[str, torch.Tensor]:
    """The state dict of the model directory at `url` (any fsspec URL)."""
    with tempfile.TemporaryDirectory(prefix="clip-init-") as tmp:
        local = Path(tmp) / "model.safetensors"
        with fsspec.open(f"{url.rstrip('/')}/model.safetensors", "rb") as f:
            local.write_bytes(f.read())
        return clip_core.load_state_dict(local)


def weights_sha256(url: str) -> str:
    """sha256 of the model directory's model.safetensors: the starting point's identity (resume key, run.json)."""
    h = hashlib.sha256()
    with fsspec.open(f"{url.rstrip('/')}/model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_model(cfg: TrainConfig, device: torch.device | str | None = None) -> clip_core.CLIP:
    """A fresh CLIP (on the meta device: shapes only, no memory); SigLIP gets the paper's temperature 10 and bias -10."""
    with torch.device(device) if device is not None else contextlib.nullcontext():
        if cfg.loss == "siglip":
            return clip_core.create_model(cfg.model, init_logit_scale=math.log(10), init_logit_bias=-10.0)
        return clip_core.create_model(cfg.model)


def init_mismatch(cfg: TrainConfig, sd: dict[str, torch.Tensor]) -> list[str]:
    """Why `sd` cannot start train.model: shape mismatches, missing and unexpected keys, by name; [] when it fits."""
    want = {k: tuple(v.shape) for k, v in build_model(cfg, device="meta").state_dict().items()}
    have = {k: tuple(v.shape) for k, v in sd.items()}
    problems = [f"{k}: {have[k]} in the weights, {want[k]} in the model" for k in sorted(want.keys() & have.keys())
                if have[k] != want[k]]  # fmt: skip
    problems += [f"{k}: missing from the weights" for k in sorted(want.keys() - have.keys())]
    problems += [f"{k}: not in the model" for k in sorted(have.keys() - want.keys())]
    return problems


def check_init_fits(cfg: TrainConfig, url: str, source: str) -> dict[str, torch.Tensor]:
    """The starting state dict, or a ValueError naming every key that does not fit train.model (before any training)."""
    sd = read_init_state(url)
    problems = init_mismatch(cfg, sd)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... {len(problems) - 8} more" if len(problems) > 8 else "")
        raise ValueError(
            f"train.init_from: the weights of {source} do not fit train.model {cfg.model!r} ({len(problems)} keys): {shown}. "
            f"Set train.model to the architecture they were trained with (the model directory's model.json)"
        )
    return sd


def load_init_weights(model: clip_core.CLIP, url: str) -> None:
    """Start from another model's weights (every rank reads them, so ranks agree); a mismatch names the keys."""
    sd = read_init_state(url)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ValueError(f"train.init_from: the weights at {url} do not fit this run's model: {e}") from e


def import_init_model(src: str, url: str) -> str:
    """Import a checkpoint (any format clip_core.load_model reads) as a model directory at `url`; returns `url`."""
    from .checkpoint import put_dir

    with tempfile.TemporaryDirectory(prefix="clip-import-") as tmp:
        loaded = clip_core.import_model(src, tmp)
        put_dir(tmp, url)
    print(f"train: imported {src} ({loaded.format}) as {url} for train.init_from")
    return url


def resolve_init_model(cfg: TrainConfig, storage: str) -> dict[str, str]:
    """train.init_from naming a model: {"model": URL of a model directory, "label": what and which weights}.

    A model directory (any fsspec URL) is used where it is; anything else `clip-pipeline models import`
    reads (open_clip/OpenAI checkpoint, open_clip hub directory) is imported once into STORAGE/init_model,
    with its tokenizer. The weights must fit train.model: a mismatch fails here, before any training,
    naming the keys (the architecture is never silently taken from the checkpoint).
    """
    spec = cfg.init_from
    fs, root = fsspec.core.url_to_fs(spec)
    if fs.exists(posixpath.join(root, "model.safetensors")) and fs.exists(posixpath.join(root, "tokenizer.json")):
        url = absolute(spec)
    elif is_url(spec):
        raise FileNotFoundError(f"train.init_from {spec}: no model directory there (model.safetensors, tokenizer.json); "
                                "import other formats with `clip-pipeline models import SRC DIR` first")  # fmt: skip
    else:
        url = import_init_model(spec, posixpath.join(storage.rstrip("/"), "init_model"))
    check_init_fits(cfg, url, spec)
    return {"model": url, "label": f"model {spec} (sha256 {weights_sha256(url)[:16]})"}
