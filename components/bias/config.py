"""`bias` section of params.yaml: the typed config of the bias-probe stage (light: no torch import)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class BiasConfig:
    """Settings of `run_bias_probe`.

    Attributes:
        probe: a shipped probe by name (`shapes`, `fairface`: components/bias/probes/<name>.yaml) or a YAML/JSON path.
        dataset_dir: the bias dataset directory; empty = data/raw/eval/bias_probe.
        cache_dir: embedding cache directory; empty = the evaluation's cache (OUT/evaluate/cache), so nothing is re-encoded.
        bootstrap: bootstrap resamples of the confidence intervals.
        confidence: two-sided level of the percentile intervals.
        seed: seed of the bootstrap (and of the linear probe's split).
        min_group_size: groups with fewer images are reported but left out of the disparity measures.
        linear_probe: also fit a logistic regression on the true labels (the paper's "LR CLIP") and report its
            per-group accuracy on a held-out split; needs true labels.
        probe_train_fraction: share of each class the linear probe trains on.
        max_flagged_rate: gate: the highest flagged rate (any category, group, variant) allowed.
        max_flagged_gap: gate: the largest max-min gap of a flagged rate across the groups of one attribute.
        max_accuracy_gap: gate: the largest max-min gap of accuracy across groups.
        gate_statistic: compare thresholds with the point estimate, or with the lower end of its
            bootstrap interval (fails only when the excess is beyond sampling noise).
        batch_size, precision, device: image encoding when the cache misses (precision is part of the cache key:
            keep it equal to evaluate.precision to reuse the evaluation's features).
        progress: show progress bars.
    """

    probe: str = "shapes"
    dataset_dir: str = ""
    cache_dir: str = ""
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    min_group_size: int = 10
    linear_probe: bool = True
    probe_train_fraction: float = 0.5
    max_flagged_rate: float = 1.0
    max_flagged_gap: float = 1.0
    max_accuracy_gap: float = 1.0
    gate_statistic: Literal["point", "ci_low"] = "point"
    batch_size: int = 64
    precision: Literal["fp32", "bf16"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = False

    def __post_init__(self) -> None:
        if self.bootstrap < 1:
            raise ValueError(f"bootstrap must be >= 1, got {self.bootstrap}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.min_group_size < 1:
            raise ValueError(f"min_group_size must be >= 1, got {self.min_group_size}")
        if not 0.0 < self.probe_train_fraction < 1.0:
            raise ValueError(f"probe_train_fraction must be in (0, 1), got {self.probe_train_fraction}")
        for name in ("max_flagged_rate", "max_flagged_gap", "max_accuracy_gap"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] (a rate), got {getattr(self, name)}")
