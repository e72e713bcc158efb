"""Subcommand `evaluate`: run the evaluation suite on a model directory."""

from __future__ import annotations

import argparse
import dataclasses

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
    p.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="evaluate this dataset instead of evaluate.datasets (repeatable); SPEC: a path or URL (format detected) or "
        "manifest:|wds:|imagefolder:PATH, torchvision:NAME:ROOT",
    )
    p.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from flows.params import load_params
    from flows.stages import data_engine, eval_root, evaluate_at, out_path

    params = load_params(args.params, args.overrides)
    cfg = params.evaluate
    if args.dataset:
        cfg = dataclasses.replace(cfg, datasets=tuple(_dataset_entry(d) for d in args.dataset))
    result = evaluate_at(  # paths or URLs (s3://...): remote ones go through local working copies
        args.model or out_path(params, "train", "model"),
        args.eval_root or eval_root(params),
        args.out or out_path(params, "evaluate"),
        cfg,
        model_config=args.model_config,
        tokenizer=args.tokenizer,
        engine=data_engine(params),
    )
    print(result.table_markdown)
    print(f"\nencoded {result.encoded} eval set(s), {result.cached} from cache; results in {result.out_dir}")
    return 0


def _dataset_entry(arg: str) -> dict[str, str]:
    name, sep, spec = arg.partition("=")
    if not sep or not name or not spec:
        raise SystemExit(f"--dataset {arg!r}: expected NAME=SPEC, e.g. --dataset cifar10=torchvision:CIFAR10:/data/cifar")
    return {name: spec}
