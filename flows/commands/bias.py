"""Subcommand `bias`: run a bias probe (label-set design vs group disparities) on a model directory."""

from __future__ import annotations

import argparse
import dataclasses

from flows.commands.models import add_model_flags


def register(sub: argparse._SubParsersAction) -> None:
    """Add `bias`."""
    p = sub.add_parser("bias", help="bias probe: flagged-label rates and accuracy per group, per label set")
    p.add_argument("--probe", default=None, help="probe name or YAML/JSON file (default: bias.probe)")
    p.add_argument(
        "--model",
        default=None,
        help="model directory, open_clip checkpoint or hub dir, or OpenAI's file (default: OUT/train/model)",
    )
    add_model_flags(p)
    p.add_argument("--dataset", default=None, help="bias dataset dir (default: bias.dataset_dir or data/raw/eval/bias_probe)")
    p.add_argument("--out", default=None, help="output directory (default: OUT/bias)")
    p.set_defaults(func=_bias)


def _bias(args: argparse.Namespace) -> int:
    from components.bias.probe import run_bias_probe
    from flows.params import load_params
    from flows.stages import eval_root, out_path
    from flows.staging import local_model_dir

    params = load_params(args.params, args.overrides)
    cfg = params.bias if args.probe is None else dataclasses.replace(params.bias, probe=args.probe)
    with local_model_dir(args.model or out_path(params, "train", "model"), args.model_config, args.tokenizer) as model:
        result = run_bias_probe(
            model,
            args.dataset or cfg.dataset_dir or f"{eval_root(params)}/bias_probe",
            args.out or out_path(params, "bias"),
            cfg,
            cache_dir=cfg.cache_dir or params.evaluate.cache_dir or out_path(params, "evaluate", "cache"),
        )
    print("\n".join(result.findings))
    print(f"\nresults in {result.out_dir} (bias.html, bias.json, summary.json)")
    if not result.gate.passed:
        print(f"bias gate failed: {result.gate.reason}")
        return 1
    return 0
