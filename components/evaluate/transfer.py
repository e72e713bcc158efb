"""WiSE-FT in the pipeline: how much zero-shot transfer a fine-tuned model keeps (Wortsman et al. 2022).

When training started from a model (train.init_from) and evaluate.wise_ft_alpha > 0, the evaluate stage
also scores the initial model and the weight-space interpolation (1 - a) * initial + a * fine-tuned on
the same eval sets, zero-shot tasks only. This module builds the interpolated model (clip_core's
`interpolate_models`, the same as `clip-pipeline models interpolate`) and the comparison table; the
flow runs the evaluations (remote staging lives there).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.io import write_atomic

from .config import EvaluateConfig

ZERO_SHOT = ("zeroshot_classification", "zeroshot_retrieval")
TABLE_METRIC = "zeroshot_classification/acc1"


@dataclass(frozen=True)
class TransferResult:
    """Zero-shot top-1 per dataset for the initial, fine-tuned and interpolated models (transfer.json)."""

    alpha: float
    initial: str
    rows: list[dict[str, Any]]  # {"model": "initial" | "fine-tuned" | "WiSE-FT a=..", "<dataset>": top-1, ...}

    def summary(self) -> dict[str, float]:
        """Flat `transfer/<model>/<dataset>/acc1` numbers for the stage summary."""
        names = {0: "initial", 1: "finetuned", 2: "wise_ft"}
        return {f"transfer/{names[i]}/{d}/acc1": round(v, 4) for i, r in enumerate(self.rows) for d, v in r.items()
                if d != "model"}  # fmt: skip


def zero_shot_config(cfg: EvaluateConfig) -> EvaluateConfig:
    """The run's evaluate config restricted to its zero-shot tasks (the transfer comparison needs no probes)."""
    tasks = tuple(t for t in cfg.tasks if t in ZERO_SHOT)
    if "zeroshot_classification" not in tasks:
        raise ValueError("evaluate.wise_ft_alpha > 0 needs zeroshot_classification in evaluate.tasks")
    return dataclasses.replace(cfg, tasks=tasks)


def interpolate(initial: str, finetuned: str, alpha: float, out_dir: str | Path) -> str:
    """The WiSE-FT model directory (1 - alpha) * initial + alpha * fine-tuned, written to `out_dir` (local)."""
    import clip_core

    clip_core.interpolate_models(initial, finetuned, alpha, out_dir)
    return str(out_dir)


def top1(metrics: dict[str, float]) -> dict[str, float]:
    """Zero-shot top-1 per dataset from an evaluation's metrics."""
    suffix = "/" + TABLE_METRIC
    return {k[: -len(suffix)]: v for k, v in metrics.items() if k.endswith(suffix)}


def transfer_table(initial: str, alpha: float, metrics: dict[str, dict[str, float]], out: str) -> TransferResult:
    """Compare the three evaluations (`metrics`: initial, fine-tuned, wise_ft) and write `out`/transfer.json."""
    labels = {"initial": "initial", "finetuned": "fine-tuned", "wise_ft": f"WiSE-FT a={alpha:g}"}
    rows = [{"model": labels[name], **top1(metrics[name])} for name in ("initial", "finetuned", "wise_ft")]
    result = TransferResult(alpha=alpha, initial=initial, rows=rows)
    write_atomic(f"{out.rstrip('/')}/transfer.json", json.dumps(dataclasses.asdict(result), indent=2))
    return result
