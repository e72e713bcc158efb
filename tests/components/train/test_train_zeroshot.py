"""Known answer: a model whose image and text embeddings are exact colour indicators scores 100%."""

import csv
from pathlib import Path

import torch
from PIL import Image

from components.train.zeroshot import zero_shot_top1

NAMES = ["red", "green", "blue"]


class ColourModel(torch.nn.Module):
    """Image -> its mean RGB; text (token = class index) -> one-hot: orthogonal, perfectly matched."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return torch.nn.functional.normalize(images.mean(dim=(2, 3)), dim=-1)  # (B, 3)

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return torch.nn.functional.one_hot(tokens[:, 0], 3).float()  # (B, 3)


def test_orthogonal_embeddings_score_100_percent(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label"])
        for i in range(9):
            rgb = [0, 0, 0]
            rgb[i % 3] = 255
            Image.new("RGB", (8, 8), tuple(rgb)).save(tmp_path / "img" / f"{i}.png")
            w.writerow([f"img/{i}.png", i % 3])
    (tmp_path / "classnames.txt").write_text("\n".join(NAMES))
    (tmp_path / "templates.txt").write_text("a {c} thing\n{c}\n")
    tokenize = lambda texts: torch.tensor([[next(j for j, n in enumerate(NAMES) if n in t)] for t in texts])  # noqa: E731
    to_tensor = lambda im: torch.from_numpy(__import__("numpy").asarray(im, dtype="float32") / 255).permute(2, 0, 1)  # noqa: E731
    assert zero_shot_top1(ColourModel(), tokenize, to_tensor, str(tmp_path), torch.device("cpu")) == 1.0
    shuffled = lambda texts: (tokenize(texts) + 1) % 3  # noqa: E731  every class embedding off by one
    assert zero_shot_top1(ColourModel(), shuffled, to_tensor, str(tmp_path), torch.device("cpu")) == 0.0
