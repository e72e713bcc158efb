"""The `data` params section: nested `synth`, `ingest` and `validate` settings (light module, no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon")
COLOURS: tuple[str, ...] = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")

# One held-out colour per shape and one held-out shape per colour (a permutation), so every
# shape and every colour is still seen in training, only never together in these pairs.
DEFAULT_HELDOUT_PAIRS: tuple[str, ...] = (
    "blue circle",
    "pink square",
    "green triangle",
    "orange star",
    "purple cross",
    "yellow ring",
    "red diamond",
    "cyan hexagon",
)


@dataclass(frozen=True)
class SynthConfig:
    """The embedded default dataset: procedurally rendered shapes with paraphrased captions."""

    seed: int = 0  # the data's own seed: changing pipeline.seed must not silently change the data version
    n_train: int = 20000
    image_size: int = 64
    samples_per_shard: int = 1000
    image_format: Literal["png", "jpg"] = "png"
    jpeg_quality: int = 90
    n_eval_per_class: int = 50  # shape, colour, shape_sketch and bias_probe: images per class
    n_compositional_per_pair: int = 25  # per held-out pair, plus as many seen-pair images
    n_retrieval: int = 500
    n_planted_duplicates: int = 24
    heldout_pairs: tuple[str, ...] = DEFAULT_HELDOUT_PAIRS  # "colour shape", never rendered in train
    background_bias: float = 0.5  # P(a shape's preferred background) beyond uniform, for bias_probe
    num_workers: int = 2

    def __post_init__(self) -> None:
        if self.n_train < 1 or self.samples_per_shard < 1:
            raise ValueError("n_train and samples_per_shard must be >= 1")
        if not 16 <= self.image_size <= 1024:
            raise ValueError(f"image_size {self.image_size} must be in [16, 1024]")
        if not 0.0 <= self.background_bias <= 1.0:
            raise ValueError(f"background_bias {self.background_bias} must be in [0, 1]")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be in [1, 100]")
        for pair in self.heldout_pairs:
            parts = pair.split()
            if len(parts) != 2 or parts[0] not in COLOURS or parts[1] not in SHAPES:
                raise ValueError(f"heldout pair {pair!r} must be 'colour shape' with colour in {COLOURS}, shape in {SHAPES}")
        for shape in SHAPES:
            if sum(p.split()[1] == shape for p in self.heldout_pairs) >= len(COLOURS):
                raise ValueError(f"every colour of {shape!r} is held out; training could never show it")
        if self.n_planted_duplicates > self.n_train:
            raise ValueError("n_planted_duplicates cannot exceed n_train")


@dataclass(frozen=True)
class IngestConfig:
    """Ingestion: sources, re-sharding, quarantine rules and parallelism."""

    sources: tuple[
        str, ...
    ] = ()  # empty: data/raw/train. Dirs, tars, brace patterns, globs, CSV/Parquet manifests, any fsspec URL
    samples_per_shard: int = 1000
    num_workers: int = 2  # decoding processes; 0 decodes in the main process
    batch_size: int = 64  # samples per worker task
    max_in_flight: int = 8  # worker tasks queued at once (bounds memory)
    max_pixels: int = 50_000_000  # width*height above this is a decompression bomb
    min_side: int = 8
    max_aspect_ratio: float = 10.0
    min_caption_chars: int = 1
    max_caption_chars: int = 1000
    allowed_formats: tuple[str, ...] = ("jpeg", "png", "webp")
    manifest_image_col: str = "image"
    manifest_caption_col: str = "caption"
    manifest_key_col: str = "key"  # used when the manifest has it, else MANIFESTSTEM-ROW
    manifest_columns: tuple[str, ...] = ()  # header-less .tsv: column names in order; () = the first line is a header
    progress: bool = True

    def __post_init__(self) -> None:
        if self.samples_per_shard < 1 or self.batch_size < 1 or self.max_in_flight < 1:
            raise ValueError("samples_per_shard, batch_size and max_in_flight must be >= 1")
        if self.num_workers < 0:
            raise ValueError("num_workers must be >= 0")
        if self.max_pixels < self.min_side * self.min_side:
            raise ValueError("max_pixels must be at least min_side**2")
        if self.max_aspect_ratio < 1.0:
            raise ValueError("max_aspect_ratio must be >= 1")
        if not 0 <= self.min_caption_chars <= self.max_caption_chars:
            raise ValueError("need 0 <= min_caption_chars <= max_caption_chars")
        if self.manifest_columns and not {self.manifest_image_col, self.manifest_caption_col} <= set(self.manifest_columns):
            raise ValueError(
                f"manifest_columns {list(self.manifest_columns)} must name manifest_image_col "
                f"{self.manifest_image_col!r} and manifest_caption_col {self.manifest_caption_col!r}"
            )
        bad = set(self.allowed_formats) - {"jpeg", "png", "webp"}
        if bad:
            raise ValueError(f"allowed_formats {sorted(bad)} not supported; use jpeg, png, webp")


@dataclass(frozen=True)
class ValidateConfig:
    """Thresholds of the great-expectations suite over OUT/ingest/metadata.parquet."""

    min_rows: int = 1
    min_caption_chars: int = 1
    max_caption_chars: int = 1000
    min_side: int = 8
    max_side: int = 4096
    max_aspect_ratio: float = 10.0
    allowed_formats: tuple[str, ...] = ("jpeg", "png", "webp")
    max_duplicate_sha256_rate: float = 0.01  # 1 - unique(sha256)/rows
    max_quarantine_rate: float = 0.05  # quarantined / input samples, from summary.json
    warn_only: tuple[str, ...] = ()  # expectation names that report but do not fail the stage

    def __post_init__(self) -> None:
        if not 0 <= self.min_caption_chars <= self.max_caption_chars:
            raise ValueError("need 0 <= min_caption_chars <= max_caption_chars")
        if not 0 < self.min_side <= self.max_side:
            raise ValueError("need 0 < min_side <= max_side")
        for name in ("max_duplicate_sha256_rate", "max_quarantine_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")


@dataclass(frozen=True)
class DataConfig:
    """The `data` section of params.yaml: `data.raw_root`, `data.engine`, `data.synth`, `data.ingest`, `data.validate`."""

    raw_root: str = "data/raw"  # the raw input dataset (versioned by data.dvc); synth writes the default one here
    # where the data stages run: "local" (this machine's worker processes) or "ray" (Ray Data on the cluster at
    # --address / RAY_ADDRESS, else a local Ray); the outputs are the same either way
    engine: Literal["local", "ray"] = "local"
    synth: SynthConfig = field(default_factory=SynthConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)

    def __post_init__(self) -> None:
        if self.engine not in ("local", "ray"):
            raise ValueError(f"data.engine={self.engine!r}: must be 'local' or 'ray'")
