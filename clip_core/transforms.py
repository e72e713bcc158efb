"""Image preprocessing as open_clip does it, built from torchvision transforms.

A checkpoint's numbers depend on the preprocessing it was trained with (SigLIP normalises with
0.5, some models squash instead of cropping), so the eval transform is built from a
`PreprocessConfig` carried with the model (open_clip's `preprocess_cfg` fields), not assumed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torchvision import transforms as T
from torchvision.transforms import functional as TF

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
INTERPOLATIONS = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR}
RESIZE_MODES = ("shortest", "longest", "squash")


@dataclass(frozen=True)
class PreprocessConfig:
    """Eval preprocessing of one model (open_clip's PreprocessCfg; `size` is the model's image size)."""

    size: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(x) for x in self.mean))
        object.__setattr__(self, "std", tuple(float(x) for x in self.std))
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"preprocess interpolation {self.interpolation!r}: use one of {sorted(INTERPOLATIONS)}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"preprocess resize_mode {self.resize_mode!r}: use one of {list(RESIZE_MODES)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], size: int | None = None) -> PreprocessConfig:
        """From open_clip's `preprocess_cfg` (its `mode` must be RGB; other keys it never has are errors)."""
        d = dict(d)
        if d.pop("mode", "RGB") != "RGB":
            raise ValueError(f"preprocess mode {d.get('mode')!r}: only RGB models are supported")
        if "interpolation" in d and d["interpolation"] == "random":  # open_clip: random means bicubic at eval
            d["interpolation"] = "bicubic"
        if isinstance(d.get("size"), (list, tuple)):
            h, w = d["size"]
            if h != w:
                raise ValueError(f"preprocess size {d['size']}: only square inputs are supported")
            d["size"] = h
        if size is not None:  # the model's own image size wins, as in open_clip
            d["size"] = size
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"preprocess config: unknown key(s) {sorted(unknown)}; allowed: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in open_clip's `preprocess_cfg` layout."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


def _to_rgb(image):
    return image.convert("RGB")


class _ResizeLongestAndPad:
    """Longer edge to `size` keeping the aspect ratio, then pad to a square with `fill`.

    open_clip's ResizeKeepRatio(longest=1) + CenterCropOrPad, same rounding and padding split.
    """

    def __init__(self, size: int, interpolation: T.InterpolationMode, fill: int):
        self.size, self.interpolation, self.fill = size, interpolation, fill

    def __call__(self, image):
        w, h = image.size
        s = self.size
        ratio = max(h, w) / s
        image = TF.resize(image, [round(h / ratio), round(w / ratio)], self.interpolation)
        w, h = image.size
        pad = [max(s - w, 0) // 2, max(s - h, 0) // 2, max(s - w + 1, 0) // 2, max(s - h + 1, 0) // 2]
        return TF.center_crop(TF.pad(image, pad, fill=self.fill), [s, s])


def image_transform(
    image_size: int,
    is_train: bool,
    mean: tuple[float, float, float] = OPENAI_MEAN,
    std: tuple[float, float, float] = OPENAI_STD,
    scale: tuple[float, float] = (0.9, 1.0),
    interpolation: str = "bicubic",
    resize_mode: str = "shortest",
    fill_color: int = 0,
) -> T.Compose:
    """PIL image -> (3, S, S) float tensor, as open_clip's `image_transform`.

    Train: random resized crop. Eval by `resize_mode`: "shortest" edge resize + center crop (CLIP's),
    "longest" edge resize + pad with `fill_color`, "squash" to S x S ignoring the aspect ratio.
    """
    normalize = T.Normalize(mean=mean, std=std)
    interp = INTERPOLATIONS[interpolation]
    if is_train:
        bicubic = T.InterpolationMode.BICUBIC  # open_clip trains with bicubic whatever the eval setting
        return T.Compose([T.RandomResizedCrop(image_size, scale=scale, interpolation=bicubic), _to_rgb, T.ToTensor(), normalize])
    if resize_mode == "squash":
        resize = [T.Resize((image_size, image_size), interpolation=interp)]
    elif resize_mode == "longest":
        resize = [_ResizeLongestAndPad(image_size, interp, fill_color)]
    else:
        resize = [T.Resize(image_size, interpolation=interp), T.CenterCrop(image_size)]
    return T.Compose([*resize, _to_rgb, T.ToTensor(), normalize])


def preprocess_transform(cfg: PreprocessConfig) -> T.Compose:
    """The eval transform of a `PreprocessConfig`."""
    return image_transform(
        cfg.size,
        False,
        cfg.mean,
        cfg.std,
        interpolation=cfg.interpolation,
        resize_mode=cfg.resize_mode,
        fill_color=cfg.fill_color,
    )
