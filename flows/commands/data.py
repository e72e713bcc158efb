"""`clip-pipeline data synth|ingest|validate`: the data stage (paths default from pipeline.out_root)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    """Add `data` with its three subcommands."""
    p = sub.add_parser("data", help="data stage: synth (default dataset), ingest, validate")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="STEP")
    s = dsub.add_parser("synth", help="write the embedded default dataset to data.raw_root (default data/raw)")
    s.add_argument("--out", help="output dir (default: data.raw_root)")
    s.set_defaults(func=_synth)
    s = dsub.add_parser("ingest", help="ingest shards/manifests into OUT/ingest (quarantining bad samples)")
    s.add_argument("--source", action="append", help="shards dir/tar/brace pattern/glob/manifest, any fsspec URL (repeatable)")
    s.add_argument("--out", help="output dir (default: OUT/ingest)")
    s.add_argument(
        "--address", default=None, help="with data.engine=ray: existing Ray cluster (host:port, ray://host:10001 or auto); "
        "default RAY_ADDRESS or a local Ray"
    )  # fmt: skip
    s.set_defaults(func=_ingest)
    s = dsub.add_parser("validate", help="great-expectations suite over OUT/ingest; exit 1 when a blocking expectation fails")
    s.add_argument("--ingest-dir", help="ingest output to validate (default: OUT/ingest)")
    s.add_argument("--out", help="output dir (default: OUT/validate)")
    s.set_defaults(func=_validate)


def _out(params: object, sub: str) -> str:
    from components.data.storage import join

    return join(params.pipeline.out_root, sub)  # type: ignore[attr-defined]


def _synth(args: argparse.Namespace) -> int:
    from components.data.synth import build_synth
    from flows.params import load_params

    params = load_params(args.params, args.overrides)
    r = build_synth(args.out or params.data.raw_root, params.data.synth)
    print(f"data synth: {r.n_train} training pairs in {r.n_shards} shards, eval sets {r.eval_sets}, "
          f"{r.n_planted} planted duplicates -> {r.root} ({r.seconds:.1f} s)")  # fmt: skip
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from flows.commands.core import print_stage
    from flows.params import load_params
    from flows.stages import run_ingest

    params = load_params(args.params, args.overrides)
    try:
        out = run_ingest(params, sources=args.source, out=args.out, address=args.address)  # what `stage ingest` runs
    except ValueError as e:  # a source that matches nothing: the user fixes the path
        print(f"clip-pipeline data ingest: {e}", file=sys.stderr)
        return 2
    return print_stage("ingest", out)


def _validate(args: argparse.Namespace) -> int:
    from components.data.validate import validate
    from flows.params import load_params

    params = load_params(args.params, args.overrides)
    r = validate(args.ingest_dir or _out(params, "ingest"), args.out or _out(params, "validate"), params.data.validate)
    print(r.message, file=sys.stdout if r.passed else sys.stderr)
    return 0 if r.passed else 1
