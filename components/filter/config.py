"""The `filter` params section: the CLIP-score filter stage's typed config (light module, no torch import)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class FilterConfig:
    """Settings of `filter_pairs` (components/filter/stage.py).

    Attributes:
        enabled: run the filter; off, the stage writes an empty kept list and training ignores it.
        teacher: the scoring model: anything `clip-pipeline models import` reads (this project's model
            directory, an open_clip checkpoint file or hub directory, OpenAI's released file); its own tokenizer
            and preprocessing are used.
        teacher_config: the teacher's architecture where the weights cannot tell it (e.g. `ViT-B-32-quickgelu`,
            a JSON file); "" = from the weights.
        min_clip_score: keep pairs whose image-caption cosine is >= this (DataComp: 0.3 with ViT-B/32,
            0.28 with ViT-L/14); null = no threshold.
        keep_fraction: keep exactly floor(keep_fraction * n) of the n pairs that pass the basic filters, highest
            score first, ties broken by key (ascending); null = no fraction. At most one of the two is set.
        min_caption_chars, min_caption_words: basic filters (0 = off): drop captions shorter than this
            (characters after stripping; whitespace-separated words).
        min_image_side: drop images whose shorter side is below this many pixels (0 = off).
        max_aspect_ratio: drop images whose long/short side ratio exceeds this (0 = off).
        batch_size: pairs per scoring batch.
        device: "auto" (CUDA when available), "cpu" or "cuda"; on Ray, GPU actors when it allows and the
            cluster has GPUs.
        precision: "fp32" or "bf16" (autocast around both towers).
        ray_actors: with data.engine ray, the number of actors holding the teacher (CPU actors: at most the
            cluster's CPUs less one, which the shard readers need).
        report_examples: pairs shown each side of the threshold in OUT/filter/filter.html.
    """

    enabled: bool = False
    teacher: str = ""
    teacher_config: str = ""
    min_clip_score: float | None = None
    keep_fraction: float | None = None
    min_caption_chars: int = 0
    min_caption_words: int = 0
    min_image_side: int = 0
    max_aspect_ratio: float = 0.0
    batch_size: int = 64
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    ray_actors: int = 2
    report_examples: int = 12

    def __post_init__(self) -> None:
        if self.enabled and not self.teacher:
            raise ValueError("filter.enabled is true but filter.teacher is empty: name a model to score with")
        if self.min_clip_score is not None and self.keep_fraction is not None:
            raise ValueError("set filter.min_clip_score or filter.keep_fraction, not both (the other: null)")
        if self.keep_fraction is not None and not 0.0 < self.keep_fraction <= 1.0:
            raise ValueError(f"filter.keep_fraction {self.keep_fraction} must be in (0, 1]")
        if self.min_clip_score is not None and not -1.0 <= self.min_clip_score <= 1.0:
            raise ValueError(f"filter.min_clip_score {self.min_clip_score} must be a cosine in [-1, 1]")
        if min(self.min_caption_chars, self.min_caption_words, self.min_image_side, self.report_examples) < 0:
            raise ValueError("filter.min_caption_chars/min_caption_words/min_image_side/report_examples must be >= 0")
        if self.max_aspect_ratio != 0 and self.max_aspect_ratio < 1:
            raise ValueError(f"filter.max_aspect_ratio {self.max_aspect_ratio} must be >= 1 (or 0 = off)")
        if self.batch_size < 1 or self.ray_actors < 1:
            raise ValueError("filter.batch_size and filter.ray_actors must be >= 1")
        if self.device not in ("auto", "cpu", "cuda") or self.precision not in ("fp32", "bf16"):
            raise ValueError("filter.device must be auto|cpu|cuda and filter.precision fp32|bf16")
