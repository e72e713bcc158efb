"""Subcommand that inspects the project: `params` (`models` lives in models.py)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    """Add `params`."""
    p = sub.add_parser("params", help="print the resolved params (after --set overrides) as JSON")
    p.set_defaults(func=_params)


def _params(args: argparse.Namespace) -> int:
    from flows.params import load_params

    print(json.dumps(load_params(args.params, args.overrides).to_dict(), indent=2))
    return 0


def print_stage(name: str, out: Any) -> int:
    """Print a stage's summary and then its files (one `key: value` line each); exit 1 when its gate failed.

    `out`: a StageOutput. `clip-pipeline stage NAME` and the stage's own subcommand both end here.
    """
    for k, v in out.summary.items():
        print(f"{k}: {v}")
    for k, url in out.links.items():
        print(f"{k}: {url}")
    if out.gate is not None and not out.gate.passed:
        print(f"clip-pipeline: {name} gate failed: {out.gate.reason}", file=sys.stderr)
        return 1
    return 0
