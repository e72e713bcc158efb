"""`clip-pipeline audit [dedup|overlap]`: training-set dedup and the train/eval overlap audit (both by default)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add `audit` with an optional step."""
    p = sub.add_parser("audit", help="dedup the training set and audit train/eval overlap (OUT/audit)")
    p.add_argument("step", nargs="?", choices=["dedup", "overlap"], help="run only this step (default: both)")
    p.set_defaults(func=_audit)


def _audit(args: argparse.Namespace) -> int:
    from flows.params import load_params
    from flows.stages import run_audit

    params = load_params(args.params, args.overrides)
    r = run_audit(params, (args.step,) if args.step else ("dedup", "overlap"))
    for k, v in r.summary.items():
        if "/" not in k or k.startswith(("dedup/", "overlap/")):
            print(f"{k}: {v}")
    for name, url in r.links.items():
        print(f"{name}: {url}")
    if r.gate is not None and not r.gate.passed:
        print(f"audit gate failed: {r.gate.reason}")
        return 1
    return 0
