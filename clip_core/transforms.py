"""Image preprocessing as open_clip does it, built from torchvision transforms."""

from __future__ import annotations

from torchvision import transforms as T

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _to_rgb(image):
    return image.convert("RGB")


def image_transform(
    image_size: int,
    is_train: bool,
    mean: tuple[float, float, float] = OPENAI_MEAN,
    std: tuple[float, float, float] = OPENAI_STD,
    scale: tuple[float, float] = (0.9, 1.0),
) -> T.Compose:
    """PIL image -> (3, S, S) float tensor. Train: random resized crop; eval: bicubic resize + center crop."""
    normalize = T.Normalize(mean=mean, std=std)
    bicubic = T.InterpolationMode.BICUBIC
    if is_train:
        return T.Compose([T.RandomResizedCrop(image_size, scale=scale, interpolation=bicubic), _to_rgb, T.ToTensor(), normalize])
    return T.Compose([T.Resize(image_size, interpolation=bicubic), T.CenterCrop(image_size), _to_rgb, T.ToTensor(), normalize])
