"""Subcommand `evaluate`: run the evaluation suite on a model directory."""

from __future__ import annotations

import argparse

from flows.commands.models import add_model_flags


def register(sub: argparse._SubParsersAction) -> None:
    """Add `evaluate`."""
    p = sub.add_parser("evaluate", help="zero-shot, retrieval, linear probe and robustness of a trained model")
    p.add_argument(
        "--model",
        default=None,
        help="model directory, open_clip checkpoint or hub dir, or OpenAI's file (default: OUT/train/model)",
    )
    add_model_flags(p)
    p.add_argument("--eval-root", default=None, help="eval datasets root (default: data.raw_root/eval)")
    p.add_argument("--out", default=None, help="output directory (default: OUT/evaluate)")
    p.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from flows.params import load_params
    from flows.stages import eval_root, evaluate_at, out_path

    params = load_params(args.params, args.overrides)
    result = evaluate_at(  # paths or URLs (s3://...): remote ones go through local working copies
        args.model or out_path(params, "train", "model"),
        args.eval_root or eval_root(params),
        args.out or out_path(params, "evaluate"),
        params.evaluate,
        model_config=args.model_config,
        tokenizer=args.tokenizer,
    )
    print(result.table_markdown)
    print(f"\nencoded {result.encoded} eval set(s), {result.cached} from cache; results in {result.out_dir}")
    return 0
