"""Checkpoint interop: load open_clip / OpenAI state dicts safely, infer architecture, save safetensors."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import CLIPConfig, TextConfig, VisionConfig
from .model import CLIP

REFUSAL = (
    "Readable formats: .safetensors; a state dict saved with torch.save (read with weights_only=True); "
    "a TorchScript archive such as OpenAI's released files (tensors read without running it); an open_clip hub "
    "directory. A pickle holding Python objects is refused because unpickling it runs code: load it where you "
    "trust it and re-save `torch.save(model.state_dict(), path)` or safetensors."
)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read `.safetensors`, a torch file (`weights_only=True`) or a TorchScript archive; never unpickles objects.

    Accepts a bare state dict, `{"state_dict": ...}` and DDP/DeepSpeed `module.` prefixes.
    """
    from .torchscript import is_torchscript_archive, load_torchscript_state_dict

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            sd = load_file(str(path))
        except SafetensorError as e:
            raise ValueError(f"{path}: not a valid safetensors file ({e}); re-download or re-export it") from e
    elif is_torchscript_archive(path):  # torch.load(weights_only=True) refuses these outright
        sd = load_torchscript_state_dict(path)
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a pickle with objects, or not a torch file at all: refuse, say why
            raise ValueError(f"{path}: cannot be read with weights_only=True ({str(e)[:300]}). {REFUSAL}") from e
        sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
        if not isinstance(sd, dict):
            raise ValueError(f"{path}: expected a state dict, found {type(obj).__name__}. {REFUSAL}")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _count_blocks(sd: dict[str, torch.Tensor], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return len({m.group(1) for k in sd if (m := pat.match(k))})


def infer_config(sd: dict[str, torch.Tensor], quick_gelu: bool = False) -> CLIPConfig:
    """Recover the architecture from state-dict shapes (as OpenAI's `build_model` does).

    Head counts are not stored in a state dict: like OpenAI, assume 64-wide heads.
    """
    text_width = sd["ln_final.weight"].shape[0]
    text = TextConfig(
        context_length=sd["positional_embedding"].shape[0],
        vocab_size=sd["token_embedding.weight"].shape[0],
        width=text_width,
        heads=text_width // 64,
        layers=_count_blocks(sd, "transformer.resblocks."),
    )
    if "visual.proj" in sd:  # ViT
        width, _, patch, _ = sd["visual.conv1.weight"].shape
        grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        vision = VisionConfig(
            image_size=patch * grid,
            layers=_count_blocks(sd, "visual.transformer.resblocks."),
            width=width,
            patch_size=patch,
            mlp_ratio=sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width,
        )
    else:  # ModifiedResNet
        counts = tuple(_count_blocks(sd, f"visual.layer{i}.") for i in range(1, 5))
        spatial = round((sd["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
        vision = VisionConfig(
            image_size=spatial * 32, layers=counts, width=sd["visual.layer1.0.conv1.weight"].shape[0], patch_size=None
        )
    return CLIPConfig(
        embed_dim=sd["text_projection"].shape[1],
        vision_cfg=vision,
        text_cfg=text,
        quick_gelu=quick_gelu,
        init_logit_bias=0.0 if "logit_bias" in sd else None,
    )


def resize_pos_embed(sd: dict[str, torch.Tensor], grid: int) -> dict[str, torch.Tensor]:
    """Bicubically resample `visual.positional_embedding` to a new patch grid (class token kept)."""
    key = "visual.positional_embedding"
    pos = sd.get(key)
    if pos is None or pos.shape[0] == grid * grid + 1:
        return sd
    old = math.isqrt(pos.shape[0] - 1)
    cls, patches = pos[:1], pos[1:]  # (1, W), (old*old, W)
    patches = patches.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()  # (1, W, old, old)
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(grid * grid, -1).to(pos.dtype)
    return {**sd, key: torch.cat([cls, patches], dim=0)}


def load_checkpoint(path: str | Path, config: CLIPConfig | str | Path | None = None, quick_gelu: bool = False) -> CLIP:
    """Build a CLIP from a checkpoint; config from argument, from the JSON beside it, or inferred."""
    from .config import get_model_config

    path = Path(path)
    sd = load_state_dict(path)
    sidecar = path.with_suffix(".json")
    if config is None and sidecar.exists():
        config = sidecar
    if config is None:
        cfg = infer_config(sd, quick_gelu=quick_gelu)
    elif isinstance(config, CLIPConfig):
        cfg = config
    else:
        cfg = get_model_config(config)
    model = CLIP(cfg)
    if not cfg.vision_cfg.is_resnet:
        sd = resize_pos_embed(sd, cfg.vision_cfg.image_size // cfg.vision_cfg.patch_size)
    for k in ("input_resolution", "context_length", "vocab_size"):  # scalars in OpenAI's JIT-era dicts
        sd.pop(k, None)
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ValueError(f"{path}: does not match the architecture: {str(e)[:500]}") from e
    if missing or unexpected:
        raise ValueError(f"{path}: does not match the architecture; missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


def save_checkpoint(model: CLIP, path: str | Path) -> Path:
    """Write `model` as `<path>.safetensors` plus its config `<path>.json`, each atomically."""
    from safetensors.torch import save_file

    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    _atomic(path, lambda tmp: save_file(sd, tmp))
    _atomic(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(model.cfg.to_dict(), indent=2)))
    return path


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        # The mode a plain write gives (0666 less the umask): mkstemp and safetensors create 0600, hiding the
        # weights from the group; a fixed mode would override a stricter umask.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask
