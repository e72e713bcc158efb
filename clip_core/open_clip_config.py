"""Translate between open_clip's model configs and `CLIPConfig`, refusing what clip_core cannot build.

open_clip's configs carry many switches (layer scale, attentional pooling, timm or HF towers,
CoCa). clip_core builds only the paper's CLIP; a switch set away from its default would load
weights into the wrong computation and give wrong features silently, so it is an error naming
the key. Switches that only matter in training or for the tokenizer are ignored.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from .config import CLIPConfig, get_model_config

_TOP_OURS = {"embed_dim", "quick_gelu", "vision_cfg", "text_cfg", "init_logit_scale", "init_logit_bias"}
_TOP_IGNORED = {"custom_text", "cast_dtype"}  # custom_text moves the text tower under `text.`: keys are renamed
_TOP_DEFAULTS: dict[str, Any] = {"nonscalar_logit_scale": False, "multimodal_cfg": None}

_SHARED_DEFAULTS: dict[str, Any] = {
    "ls_init_value": None,
    "final_ln_after_pool": False,
    "act_kwargs": None,
    "norm_kwargs": None,
    "block_type": None,
    "qk_norm": False,
    "scaled_cosine_attn": False,
    "scale_heads": False,
    "scale_attn_inner": False,
    "scale_attn": False,
    "scale_fc": False,
}
_VISION_OURS = {"image_size", "layers", "width", "head_width", "patch_size", "mlp_ratio"}
_VISION_IGNORED = {"patch_dropout", "output_tokens", "attn_pooler_queries", "attn_pooler_heads", "timm_model_pretrained"}
_VISION_IGNORED |= {"timm_pool", "timm_proj", "timm_proj_bias", "timm_drop", "timm_drop_path"}  # only with timm_model_name
_VISION_DEFAULTS = {
    **_SHARED_DEFAULTS,
    "attentional_pool": False,
    "no_ln_pre": False,
    "pos_embed_type": "learnable",
    "pool_type": "tok",
    "timm_model_name": None,
}
_TEXT_OURS = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"}
_TEXT_IGNORED = {"hf_tokenizer_name", "tokenizer_mode", "tokenizer_kwargs", "pad_id", "eos_id", "output_tokens"}
_TEXT_IGNORED |= {"hf_model_pretrained", "hf_proj_type", "hf_pooler_type"}  # only with hf_model_name
_TEXT_DEFAULTS = {
    **_SHARED_DEFAULTS,
    "embed_cls": False,
    "no_causal_mask": False,
    "pool_type": "argmax",
    "proj_bias": False,
    "proj_type": "linear",
    "hf_model_name": None,
}


def _take(d: dict[str, Any], ours: set[str], ignored: set[str], defaults: dict[str, Any], where: str) -> dict[str, Any]:
    out = {}
    for key, value in d.items():
        if key in ours:
            out[key] = value
        elif key in defaults:
            if value != defaults[key] and not (key == "block_type" and value == "default"):
                raise ValueError(
                    f"{where}.{key} = {value!r}: clip_core builds only the standard CLIP architecture "
                    f"({key} = {defaults[key]!r}); evaluate this model with open_clip itself"
                )
        elif key not in ignored:
            raise ValueError(f"{where}: unknown key {key!r}; is this an open_clip model config?")
    return out


def config_from_open_clip(model_cfg: dict[str, Any], source: str = "<model_cfg>") -> CLIPConfig:
    """`CLIPConfig` from an open_clip `model_cfg` dict (this project's configs are a subset and pass unchanged)."""
    top = _take(model_cfg, _TOP_OURS, _TOP_IGNORED, _TOP_DEFAULTS, source)
    vision = _take(top.get("vision_cfg", {}), _VISION_OURS, _VISION_IGNORED, _VISION_DEFAULTS, f"{source}: vision_cfg")
    text = _take(top.get("text_cfg", {}), _TEXT_OURS, _TEXT_IGNORED, _TEXT_DEFAULTS, f"{source}: text_cfg")
    if isinstance(vision.get("image_size"), (list, tuple)):
        h, w = vision["image_size"]
        if h != w:
            raise ValueError(f"{source}: vision_cfg.image_size {vision['image_size']}: only square images are supported")
        vision["image_size"] = h
    if isinstance(vision.get("layers"), (list, tuple)):
        vision.setdefault("patch_size", None)  # open_clip ignores patch_size for a ResNet; ours insists on None
        vision["patch_size"] = None
    return CLIPConfig.from_dict({**top, "vision_cfg": vision, "text_cfg": text}, source=source)


def config_to_open_clip(cfg: CLIPConfig) -> dict[str, Any]:
    """open_clip `model_cfg` of a `CLIPConfig` (the fields are open_clip's own names)."""
    d = cfg.to_dict()
    for key in ("init_logit_scale", "init_logit_bias"):
        if d[key] is None:
            del d[key]
    return d


def open_clip_package_file(*parts: str) -> Path | None:
    """A data file of the installed open_clip package, found without importing it (slow, and not a dependency)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.exists() else None


def resolve_model_config(name_or_json: str | Path | dict[str, Any]) -> CLIPConfig:
    """A config from a shipped name, an open_clip model name (installed package), a JSON file or inline JSON.

    JSON may be this project's config, an open_clip `model_cfg`, or a whole `open_clip_config.json`.
    """
    if isinstance(name_or_json, dict):
        d, source = name_or_json, "<dict>"
    elif str(name_or_json).lstrip().startswith("{"):
        d, source = json.loads(str(name_or_json)), "--model-config JSON"
    elif Path(name_or_json).suffix == ".json" and Path(name_or_json).exists():
        source = str(name_or_json)
        try:
            d = json.loads(Path(name_or_json).read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{source}: invalid JSON ({e}); fix the file") from e
    else:
        try:
            return get_model_config(name_or_json)
        except ValueError:
            path = open_clip_package_file("model_configs", f"{name_or_json}.json")
            if path is None:
                raise
            d, source = json.loads(path.read_text()), str(path)
    return config_from_open_clip(d.get("model_cfg", d), source)
