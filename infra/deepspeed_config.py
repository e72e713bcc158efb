"""DeepSpeed configs: the JSON templates in infra/deepspeed/ (one per ZeRO stage) filled from params."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).parent / "deepspeed"


def load_template(stage: int) -> dict[str, Any]:
    """The shipped template `infra/deepspeed/zero{stage}.json`."""
    path = CONFIG_DIR / f"zero{stage}.json"
    if not path.exists():
        raise ValueError(f"no DeepSpeed template for ZeRO stage {stage} ({path}); stages 0-3 ship")
    return json.loads(path.read_text())


def deepspeed_config(stage: int, precision: str, batch: int, accum: int, grad_clip: float) -> dict[str, Any]:
    """A complete DeepSpeed config: the stage template with batch, accumulation, clipping and precision set.

    `batch` is the micro-batch per worker; DeepSpeed derives train_batch_size = batch * accum * world.
    """
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    cfg = copy.deepcopy(load_template(stage))
    cfg["train_micro_batch_size_per_gpu"] = int(batch)
    cfg["gradient_accumulation_steps"] = int(accum)
    cfg["gradient_clipping"] = float(grad_clip)
    cfg["bf16"] = {**cfg.get("bf16", {}), "enabled": precision == "bf16"}
    cfg["fp16"] = {**cfg.get("fp16", {}), "enabled": precision == "fp16"}
    return cfg
