"""Subcommand `evaluate`: run the evaluation suite on a model directory."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add `evaluate`."""
    p = sub.add_parser("evaluate", help="zero-shot, retrieval, linear probe and robustness of a trained model")
    p.add_argument("--model", default=None, help="model directory (default: OUT/train/model)")
    p.add_argument("--eval-root", default=None, help="eval datasets root (default: data.raw_root/eval)")
    p.add_argument("--out", default=None, help="output directory (default: OUT/evaluate)")
    p.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from components.evaluate.suite import evaluate_model
    from flows.params import load_params

    params = load_params(args.params, args.overrides)
    out_root = Path(params.pipeline.out_root)
    result = evaluate_model(
        args.model or out_root / "train" / "model",
        args.eval_root or Path(params.data.raw_root) / "eval",
        args.out or out_root / "evaluate",
        params.evaluate,
    )
    print(result.table_markdown)
    print(f"\nencoded {result.encoded} eval set(s), {result.cached} from cache; results in {result.out_dir}")
    return 0
