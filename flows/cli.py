"""`clip-pipeline`: one subcommand per stage. Heavy imports happen inside the subcommand that needs them."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules under flows/commands/ each define `register(subparsers)`; the parser sets `func(args) -> int`.
COMMAND_MODULES = [
    "flows.commands.core",
    "flows.commands.models",
    "flows.commands.data",
    "flows.commands.pipeline",
    "flows.commands.evaluate",
    "flows.commands.train",
    "flows.commands.bias",
    "flows.commands.audit",
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (imports only the light command modules)."""
    parser = argparse.ArgumentParser(prog="clip-pipeline", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SEC.KEY=VALUE", help="override a param")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    from flows.params import ParamsError
    from flows.prefect_auth import use_local_credential

    use_local_credential()  # before any subcommand imports Prefect (its settings are read once)

    try:
        return int(args.func(args) or 0)
    except ParamsError as e:
        print(f"clip-pipeline: params error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
