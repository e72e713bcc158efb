"""The `pipeline` section: run identity, output root, seed and the retraining schedule."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PipelineConfig:
    """Settings that belong to the whole run rather than one stage."""

    out_root: str = "out"  # any fsspec URL: local path, file://, s3://, memory://
    run_name: str = "default"
    seed: int = 0
    retrain_cron: str = "0 3 * * 1"  # scheduled retraining: weekly, Monday 03:00
    log_level: str = "warning"  # console: warning = stage lines only; info/debug = also Prefect's log and Ray's workers

    def __post_init__(self) -> None:
        if not self.out_root:
            raise ValueError("out_root must be a path or URL")
        if self.log_level not in ("warning", "info", "debug"):
            raise ValueError(f"log_level {self.log_level!r} must be warning, info or debug")
        if len(self.retrain_cron.split()) != 5:
            raise ValueError(f"retrain_cron {self.retrain_cron!r} must have 5 cron fields")
