"""Subcommand `train`: pre-train CLIP on the ingested shards with Ray Train (+ DeepSpeed)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add `train`."""
    p = sub.add_parser("train", help="pre-train CLIP on Ray workers (params section `train`)")
    p.add_argument(
        "--address", default=None, help="existing Ray cluster (ray://host:10001 or auto); default RAY_ADDRESS or a local Ray"
    )
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from flows.commands.core import print_stage
    from flows.params import load_params
    from flows.stages import run_train

    out = run_train(load_params(args.params, args.overrides), address=args.address)  # what `stage train` runs
    return print_stage("train", out)
