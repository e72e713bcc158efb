"""Subcommand that inspects the project: `params` (`models` lives in models.py)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    """Add `params`."""
    p = sub.add_parser("params", help="print the resolved params (after --set overrides) as JSON")
    p.set_defaults(func=_params)


def _params(args: argparse.Namespace) -> int:
    from flows.params import load_params

    print(json.dumps(load_params(args.params, args.overrides).to_dict(), indent=2))
    return 0
