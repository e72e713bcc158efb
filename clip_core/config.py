"""Model architecture configs: open_clip-style JSON files turned into frozen dataclasses."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class VisionConfig:
    """Image tower. `layers` is an int for a ViT, a 4-list of block counts for a ModifiedResNet."""

    image_size: int = 224
    layers: int | tuple[int, int, int, int] = 12
    width: int = 768
    head_width: int = 64
    patch_size: int | None = 32
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))
        if self.is_resnet:
            if len(self.layers) != 4:
                raise ValueError(f"vision_cfg.layers for a ResNet needs 4 stage counts, got {self.layers}")
            if self.image_size % 32:
                raise ValueError(f"vision_cfg.image_size must be a multiple of 32 for a ResNet, got {self.image_size}")
        else:
            if not self.patch_size or self.image_size % self.patch_size:
                raise ValueError(
                    f"vision_cfg.image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})"
                )
            if self.width % self.head_width:
                raise ValueError(f"vision_cfg.width ({self.width}) must be a multiple of head_width ({self.head_width})")

    @property
    def is_resnet(self) -> bool:
        """True when the tower is the paper's ModifiedResNet (explicit by `layers` being a list)."""
        return isinstance(self.layers, tuple)


@dataclass(frozen=True)
class TextConfig:
    """Causal text transformer."""

    context_length: int = 77
    vocab_size: int = 49408
    width: int = 512
    heads: int = 8
    layers: int = 12
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"text_cfg.width ({self.width}) must be a multiple of heads ({self.heads})")


@dataclass(frozen=True)
class CLIPConfig:
    """A whole CLIP architecture (field names follow open_clip's model configs)."""

    embed_dim: int
    vision_cfg: VisionConfig = field(default_factory=VisionConfig)
    text_cfg: TextConfig = field(default_factory=TextConfig)
    quick_gelu: bool = False
    init_logit_scale: float | None = None  # None: log(1/0.07) as in the paper
    init_logit_bias: float | None = None  # set (e.g. -10) for SigLIP

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<dict>") -> CLIPConfig:
        """Build from an open_clip-style dict; unknown keys are errors naming `source`."""
        _check_keys(d, cls, source)
        d = dict(d)
        vision = d.pop("vision_cfg", {})
        text = d.pop("text_cfg", {})
        _check_keys(vision, VisionConfig, f"{source}: vision_cfg")
        _check_keys(text, TextConfig, f"{source}: text_cfg")
        return cls(vision_cfg=VisionConfig(**vision), text_cfg=TextConfig(**text), **d)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (inverse of `from_dict`)."""
        d = asdict(self)
        if isinstance(d["vision_cfg"]["layers"], tuple):
            d["vision_cfg"]["layers"] = list(d["vision_cfg"]["layers"])
        return d


def _check_keys(d: dict[str, Any], cls: type, source: str) -> None:
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def list_models() -> list[str]:
    """Names of the architectures shipped in clip_core/configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def get_model_config(name_or_path: str | Path) -> CLIPConfig:
    """Load a config by shipped name (e.g. "ViT-B-32") or by path to a JSON file."""
    path = Path(name_or_path)
    if path.suffix != ".json" or not path.exists():
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.exists():
        raise ValueError(f"unknown model {str(name_or_path)!r}: not a JSON file and not one of {list_models()}")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e}); fix the file") from e
    return CLIPConfig.from_dict(d, source=str(path))
