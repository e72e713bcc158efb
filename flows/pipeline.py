"""The `clip-pipeline` Prefect flow: every stage as a task, paths between them, artifacts per stage."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from components.io import absolute
from flows import console, growth, stages
from flows.params import load_params


class GateFailedError(RuntimeError):
    """A validation/audit/bias gate stopped the run; the message is what the UI shows."""


def _publish(name: str, out: stages.StageOutput) -> None:
    """Summary table (+ links) as Prefect artifacts; keys must be lowercase-dashed."""
    key = name.replace("_", "-")
    rows = [{"item": k, "value": v} for k, v in out.summary.items()]
    if rows:
        create_table_artifact(table=rows, key=f"{key}-summary", description=f"{name}: summary")
    if out.links:
        md = "\n".join(f"- [{label}]({url})" for label, url in out.links.items())
        create_markdown_artifact(markdown=f"### {name}\n{md}", key=f"{key}-links", description=f"{name}: outputs")
    if out.markdown:
        create_markdown_artifact(markdown=out.markdown, key=f"{key}-headline", description="is this model good, what changed")


def summary_line(name: str, summary: dict[str, Any], limit: int = 400) -> str:
    """A stage's summary as one log line: its own `line` when it has one, else its flat numbers and verdicts."""
    text = summary.get("line") or ", ".join(f"{k}={v}" for k, v in summary.items() if not isinstance(v, (dict, list)))
    text = str(text)
    return f"{name}: {text[:limit]}{'...' if len(text) > limit else ''}"


def _stage_task(name: str, retries: int = 0, fn: Any = None):
    fn = fn or getattr(stages, f"run_{name}")

    @task(name=name, retries=retries, retry_delay_seconds=[5, 20, 60][:retries] or 0)
    def _run(params_path: str, overrides: list[str]) -> dict[str, Any]:
        params = load_params(params_path, overrides)
        t0 = time.perf_counter()
        found: list[dict[str, Any]] = []  # warnings go to the summary and the report, not one console line per call
        with console.collect_warnings(found):
            out = fn(params)
        compute_s = time.perf_counter() - t0
        if found:
            from components.io import write_json

            write_json(stages.out_path(params, "logs", "warnings", f"{name}.json"), found)
        _publish(name, out)
        get_run_logger().info(summary_line(name, out.summary))  # the run's log says what happened, not only "Completed"
        if out.gate is not None and not out.gate.passed:
            raise GateFailedError(f"{name} gate failed: {out.gate.reason}")
        extra = {"gate": "passed"} if out.gate is not None else {}
        return {**out.summary, **extra, "warnings": found, "compute_s": round(compute_s, 2)}

    return _run


# Retries only where a failure can be transient: stages that touch remote storage.
synth_task = _stage_task("synth")
ingest_task = _stage_task("ingest", retries=2)
validate_task = _stage_task("validate")
filter_task = _stage_task("filter")  # CLIP-score filter (off by default): training reads only OUT/filter/kept_keys.txt
train_task = _stage_task("train", retries=1)
evaluate_task = _stage_task("evaluate")
bias_task = _stage_task("bias")
dedup_task = _stage_task("dedup")  # before train: with audit.dedup_policy keep_one/drop, training skips duplicates
audit_task = _stage_task("audit")  # the overlap audit; needs evaluate's per-sample zero-shot predictions
report_task = _stage_task("report", retries=2)
register_task = _stage_task("register", retries=2)
new_data_task = _stage_task("new_data", fn=growth.run_new_data)  # scheduled retrain: after ingest

STAGE_ORDER = ["synth", "ingest", "validate", "filter", "dedup", "train", "evaluate", "audit", "bias", "register", "report"]
OPTIONAL_STAGES: list[str] = []
TASKS = {n: globals()[f"{n}_task"] for n in STAGE_ORDER + OPTIONAL_STAGES}


def _run_stage(name: str, task_fn: Any, position: str, params_path: str, overrides: list[str]) -> tuple[dict, dict]:
    """One task with its console line (a spinner or bar while it runs; a failed stage says so and re-raises)."""
    t0 = time.perf_counter()
    try:
        with console.stage(name, position):
            result = task_fn(params_path, overrides)
    except BaseException as e:
        console.failed_line(name, time.perf_counter() - t0, e)
        console.finish()  # a remote OUT gets the log of a failed run too
        raise
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    console.stage_line(name, result["wall_s"], result)
    return result, {"wall_s": result["wall_s"], "compute_s": result["compute_s"]}


@flow(name="clip-pipeline", log_prints=True)
def clip_pipeline(
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    only_if_data_changed: bool = False,
    stages_to_run: list[str] | None = None,
) -> dict[str, Any]:
    """synth -> ingest -> validate -> filter -> dedup -> train -> evaluate -> audit -> bias -> register -> report.

    Args:
        params_path: the params.yaml to load (each task re-loads it, so tasks pass paths, not objects).
        overrides: `section.key=value` strings applied on top of params.yaml for this run.
        only_if_data_changed: the scheduled retraining mode: stop early when the data version equals
            the one the current champion was trained on; after ingest, fail when the sources the champion
            never saw were quarantined past data.validate.max_quarantine_rate (flows/growth.py).
        stages_to_run: stages in order, from STAGE_ORDER and OPTIONAL_STAGES (default: STAGE_ORDER).
    """
    logger = get_run_logger()
    overrides = list(overrides or [])
    params = load_params(params_path, overrides)
    console.setup(params.pipeline.out_root, params.pipeline.log_level)
    if params.pipeline.log_level == "warning":  # the stage's own line replaces the components' bars and tables
        overrides += ["data.ingest.progress=false", "evaluate.progress=false"]
    # Tasks re-load params from a snapshot taken now, so editing params.yaml mid-run cannot mix configs.
    params_path = stages.snapshot_params(params, params_path)
    if only_if_data_changed:
        changed, reason = stages.data_changed(params)
        logger.info(reason)
        console.note(f"retrain: {reason}")
        if not changed:
            create_markdown_artifact(markdown=f"Retraining skipped: {reason}", key="retrain-decision")
            console.finish()
            return {"skipped": reason}
    results: dict[str, Any] = {}
    timings: dict[str, dict[str, float]] = {}
    t_flow = time.perf_counter()
    order = stages_to_run or STAGE_ORDER
    for i, name in enumerate(order, 1):
        if name not in TASKS:
            raise ValueError(f"unknown stage {name!r}; stages: {STAGE_ORDER + OPTIONAL_STAGES}")
        results[name], timings[name] = _run_stage(name, TASKS[name], f"{i}/{len(order)}", params_path, overrides)
        if name == "ingest" and only_if_data_changed:  # the new data alone must pass the quarantine threshold
            results["new_data"], timings["new_data"] = _run_stage("new_data", new_data_task, "+", params_path, overrides)
    total = time.perf_counter() - t_flow
    compute = sum(t["compute_s"] for t in timings.values())
    timings["_total"] = {"wall_s": round(total, 2), "compute_s": round(compute, 2)}
    stages.save_timings(params, timings)
    create_table_artifact(
        table=[{"stage": k, **v} for k, v in timings.items()], key="pipeline-timings", description="wall time per stage"
    )
    report = stages.out_path(params, "report", "report.html") if "report" in results else None
    console.final_table(results, absolute(report) if report else report, total)
    console.finish()
    return results
