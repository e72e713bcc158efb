"""Subcommands that run the whole pipeline: `run`, `demo`, `serve`, `stage`."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile


def register(sub: argparse._SubParsersAction) -> None:
    """Add `run`, `demo`, `serve` and `stage`."""
    p = sub.add_parser("run", help="run the Prefect flow clip-pipeline in this process")
    p.add_argument("--stages", nargs="+", help="only these stages, in this order (space- or comma-separated)")
    p.add_argument("--only-if-data-changed", action="store_true", help="the scheduled-retraining mode")
    _verbose_flag(p)
    p.set_defaults(func=_run)
    p = sub.add_parser("demo", help="the whole pipeline on the embedded dataset; prints where the report is")
    _verbose_flag(p)
    p.set_defaults(func=_demo)
    p = sub.add_parser("serve", help="serve the deployments clip-pipeline/full and clip-pipeline/retrain")
    p.set_defaults(func=_serve)
    p = sub.add_parser("stage", help="run one stage without Prefect (what dvc.yaml calls)")
    p.add_argument("name", help="synth, ingest, validate, filter, dedup, train, evaluate, audit, bias, register or report")
    p.set_defaults(func=_stage)


def _verbose_flag(p: argparse.ArgumentParser) -> None:
    help_ = "also Prefect's run log and Ray's worker output (pipeline.log_level=info)"
    p.add_argument("--verbose", action="store_true", help=help_)


def _console_setup(args: argparse.Namespace):
    """Params with --verbose applied; the console quietened before Prefect starts its temporary server."""
    from flows.params import load_params

    if getattr(args, "verbose", False):
        args.overrides = [*args.overrides, "pipeline.log_level=info"]
    params = load_params(args.params, args.overrides)  # fail on a params error before starting anything
    _quiet_services()
    import prefect  # noqa: F401  (its logging setup first; console.setup adjusts it)

    from flows import console

    console.setup(params.pipeline.out_root, params.pipeline.log_level)
    return params


def _quiet_services() -> None:
    """No telemetry from Prefect or Ray (and no racing telemetry write into a fresh SQLite database)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Prefect's temporary API gets 20 s to start by default: too little on a busy 2-core machine
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


def _run(args: argparse.Namespace) -> int:
    if args.stages:  # `--stages ingest validate` or `--stages ingest,validate`; a typo fails here, before anything starts
        from flows.pipeline import OPTIONAL_STAGES, STAGE_ORDER

        args.stages = [s for a in args.stages for s in a.split(",") if s]
        unknown = [s for s in args.stages if s not in STAGE_ORDER + OPTIONAL_STAGES]
        if unknown:
            print(f"clip-pipeline run: unknown stage(s) {unknown}; stages: {', '.join(STAGE_ORDER + OPTIONAL_STAGES)}",
                  file=sys.stderr)  # fmt: skip
            return 2
    _console_setup(args)
    from flows.pipeline import clip_pipeline

    clip_pipeline(  # prints a line per stage (and a skipped retrain's reason), then the closing table
        params_path=args.params,
        overrides=args.overrides,
        only_if_data_changed=args.only_if_data_changed,
        stages_to_run=args.stages,
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    # A Prefect home of its own: no clash with another Prefect process's SQLite database.
    if "PREFECT_API_URL" not in os.environ:
        os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="clip-pipeline-prefect-"))
    _console_setup(args)
    from flows.pipeline import clip_pipeline

    clip_pipeline(params_path=args.params, overrides=args.overrides)  # ends with the table and the report's path
    return 0


def _serve(args: argparse.Namespace) -> int:
    _quiet_services()
    from flows.deploy import serve

    serve(args.params)
    return 0


def _stage(args: argparse.Namespace) -> int:
    from flows import stages
    from flows.params import load_params

    fn = getattr(stages, f"run_{args.name}", None)
    if fn is None:
        print(f"clip-pipeline: unknown stage {args.name!r}", file=sys.stderr)
        return 2
    from flows.commands.core import print_stage

    return print_stage(args.name, fn(load_params(args.params, args.overrides)))
