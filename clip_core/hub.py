"""One resolver for every model a user can bring: this project's directory, open_clip files and dirs, OpenAI's files.

Users arrive with weights in whatever layout their tool wrote. Each layout is detected here,
read without executing pickled objects (safetensors, `weights_only=True`, or the restricted
TorchScript reader), and turned into the same four things: a `CLIP`, its tokenizer, its
preprocessing and an identity hash for caches. Formats and what they need:

- model directory: `model.safetensors` + `model.json` + `tokenizer.json` [+ `preprocess.json`]
- open_clip hub directory: `open_clip_config.json` (`model_cfg`, `preprocess_cfg`) + weights
- checkpoint file (`.safetensors`, `.pt`, `.bin`, `.pth`): architecture inferred from shapes,
  or `model_config` where shapes cannot tell (QuickGELU, head width)
- OpenAI's released file: a TorchScript archive; QuickGELU unless `model_config` says otherwise
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import infer_config, load_state_dict, resize_pos_embed
from .config import CLIPConfig
from .model import CLIP
from .open_clip_config import config_from_open_clip, open_clip_package_file, resolve_model_config
from .tokenizer import Tokenizer
from .torchscript import is_torchscript_archive
from .transforms import PreprocessConfig

HUB_WEIGHTS = (  # open_clip's own preference order (factory._find_checkpoint_in_dir)
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
)
CLIP_BPE = "bpe_simple_vocab_16e6.txt.gz"
_BPE_FINGERPRINT = ("a photo of a cat", [320, 1125, 539, 320, 2368])  # ids under CLIP's released BPE


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to evaluate, and where it came from."""

    model: CLIP
    tokenizer: Tokenizer
    preprocess: PreprocessConfig
    sha256: str  # identity for caches: the weights file, plus the config where it was not stored with them
    format: str  # model-dir | open_clip-hub | torchscript | safetensors | torch-state-dict
    source: Path
    weights: Path  # the file the tensors were read from


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def detect_format(path: str | Path) -> str:
    """Which of the supported layouts `path` is; an error says what each layout needs."""
    path = Path(path)
    if path.is_dir():
        if (path / "open_clip_config.json").exists():  # first: a hub dir may name its weights model.safetensors
            return "open_clip-hub"
        if (path / "model.safetensors").exists():
            return "model-dir"
        raise FileNotFoundError(
            f"{path}: neither a model directory (model.safetensors, model.json, tokenizer.json) nor an "
            "open_clip hub directory (open_clip_config.json + open_clip_model.safetensors); "
            "for a checkpoint file, pass the file itself"
        )
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; pass a model directory, an open_clip hub directory or a checkpoint file")
    if path.suffix == ".safetensors":
        return "safetensors"
    if is_torchscript_archive(path):
        return "torchscript"
    return "torch-state-dict"


def _hub_weights(path: Path) -> Path:
    for name in HUB_WEIGHTS:
        if (path / name).exists():
            return path / name
    raise FileNotFoundError(f"{path}: open_clip_config.json but no weights; expected one of {list(HUB_WEIGHTS)}")


def _normalise_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip's CustomTextCLIP keeps the text tower under `text.`; ours (and CLIP's) at the top level.

    A state dict saved from a `torch.compile`d wrapper carries `_orig_mod.` in every key: dropped."""
    sd = {k.replace("_orig_mod.", ""): v for k, v in sd.items()}  # saved from a torch.compile'd model
    if "text.token_embedding.weight" in sd:
        sd = {k.removeprefix("text."): v for k, v in sd.items()}
    for k in ("input_resolution", "context_length", "vocab_size"):  # scalars in OpenAI's JIT-era dicts
        sd.pop(k, None)
    return sd


def build_model(sd: dict[str, torch.Tensor], cfg: CLIPConfig, source: Path) -> CLIP:
    """A `CLIP` of `cfg` holding `sd`; a mismatch names the file and the fix."""
    model = CLIP(cfg)
    if not cfg.vision_cfg.is_resnet:
        sd = resize_pos_embed(sd, cfg.vision_cfg.image_size // cfg.vision_cfg.patch_size)
    hint = "pass --model-config with the architecture the weights were trained with"
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ValueError(f"{source}: weights do not match the architecture ({str(e)[:400]}); {hint}") from e
    if missing or unexpected:
        raise ValueError(
            f"{source}: weights do not match the architecture; missing {missing[:5]}, unexpected {unexpected[:5]}; {hint}"
        )
    return model


def load_tokenizer(spec: str | Path | None, context_length: int, vocab_size: int, model_dir: Path | None = None) -> Tokenizer:
    """`spec` (tokenizer.json or a BPE merges file), else the model dir's tokenizer.json, else CLIP's BPE from open_clip."""
    if spec is None and model_dir is not None and (model_dir / "tokenizer.json").exists():
        spec = model_dir / "tokenizer.json"
    if spec is None:
        spec = open_clip_package_file(CLIP_BPE)
        if spec is None or vocab_size != 49408:
            raise FileNotFoundError(
                f"no tokenizer for this model (vocab {vocab_size}): pass --tokenizer with CLIP's {CLIP_BPE} "
                "or this project's tokenizer.json"
            )
    spec = Path(spec)
    if not spec.exists():
        raise FileNotFoundError(f"{spec}: tokenizer not found; pass --tokenizer with {CLIP_BPE} or a tokenizer.json")
    if spec.suffix == ".json":
        tok = Tokenizer.load(spec)
    else:
        tok = Tokenizer.from_bpe_merges(spec, context_length)
    if tok.vocab_size > vocab_size:  # a trained BPE may be smaller than the embedding table, never larger
        raise ValueError(
            f"{spec}: tokenizer has {tok.vocab_size} ids, the model embeds {vocab_size}; pass the model's own tokenizer"
        )
    return tok


def is_clip_bpe(tok: Tokenizer) -> bool:
    """True when `tok` is CLIP's released BPE (open_clip's default tokenizer gives the same ids)."""
    return tok.vocab_size == 49408 and tok.encode(_BPE_FINGERPRINT[0]) == _BPE_FINGERPRINT[1]


def load_model(
    spec: str | Path,
    model_config: str | Path | CLIPConfig | None = None,
    tokenizer: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> LoadedModel:
    """Resolve any supported model input (see the module docstring) into a `LoadedModel` in eval mode."""
    path = Path(spec)
    fmt = detect_format(path)
    stored_cfg, preprocess_dict, tok_dir = None, {}, None
    if fmt == "model-dir":
        weights, tok_dir = path / "model.safetensors", path
        if (path / "model.json").exists():
            stored_cfg = resolve_model_config(path / "model.json")
        if (path / "preprocess.json").exists():
            preprocess_dict = _read_json(path / "preprocess.json")
    elif fmt == "open_clip-hub":
        hub = _read_json(path / "open_clip_config.json")
        if "model_cfg" not in hub:
            raise ValueError(f"{path / 'open_clip_config.json'}: no model_cfg; write it as open_clip does")
        stored_cfg = config_from_open_clip(hub["model_cfg"], str(path / "open_clip_config.json"))
        preprocess_dict, weights = hub.get("preprocess_cfg", {}), _hub_weights(path)
        if (path / "tokenizer.meta.json").exists():  # this project's tokenizer, written by `models export`
            tok_dir = path
    else:
        weights = path
        sidecar = path.with_suffix(".json")  # save_checkpoint writes the config beside the weights
        if sidecar.exists() and model_config is None:
            stored_cfg = resolve_model_config(sidecar)
    sd = _normalise_keys(load_state_dict(weights))
    if model_config is not None:
        cfg = model_config if isinstance(model_config, CLIPConfig) else resolve_model_config(model_config)
    elif stored_cfg is not None:
        cfg = stored_cfg
    else:
        try:
            cfg = infer_config(sd, quick_gelu=fmt == "torchscript")  # OpenAI's released models use QuickGELU
        except KeyError as e:
            raise ValueError(f"{path}: not a CLIP state dict (no {e}); pass --model-config or check the file") from e
    model = build_model(sd, cfg, weights).to(device).eval()
    tok = load_tokenizer(tokenizer, cfg.text_cfg.context_length, cfg.text_cfg.vocab_size, tok_dir)
    try:
        preprocess = PreprocessConfig.from_dict(preprocess_dict, size=cfg.vision_cfg.image_size)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: preprocess config: {e}") from e
    sha = file_sha256(weights)
    if fmt != "model-dir":  # the same weights under another architecture (e.g. QuickGELU) are another model
        sha = hashlib.sha256(f"{sha}:{json.dumps(cfg.to_dict(), sort_keys=True)}".encode()).hexdigest()
    return LoadedModel(model, tok, preprocess, sha, fmt, path, weights)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e}); fix the file") from e
