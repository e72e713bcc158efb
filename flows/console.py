"""What a person sees while the pipeline runs: one line per stage, one training bar, a closing table.

Everything else (Prefect's run log, Ray, library warnings) goes to OUT/logs/pipeline.log; with
`pipeline.log_level: info` (or `--verbose`) Prefect's log and the Ray workers' output come back to
the console as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from components.io import is_remote, is_url

LOG_LEVELS = ("warning", "info", "debug")  # pipeline.log_level: what the console shows besides the stage lines

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)  # a log file gets 120 columns
_state: dict[str, Any] = {"progress": None, "task": None, "log_file": None, "log_url": None}
_FORMAT = "%(asctime)s %(levelname)-7s %(who)s: %(message)s"


class _FileFormatter(logging.Formatter):
    """Prefect's run loggers name their task or flow run (`prefect.task_runs [train-6e8]`)."""

    def format(self, record: logging.LogRecord) -> str:
        run = getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None)
        record.who = f"{record.name} [{run}]" if run else record.name
        return super().format(record)


def setup(out_root: str, level: str = "warning") -> str:
    """Send every log record to OUT/logs/pipeline.log; keep the console to warnings unless `level` says more.

    Call before the flow starts (after `import prefect`, whose logging setup this adjusts). Returns the
    log file's URL. Ray reads RAY_LOG_TO_DRIVER when it starts: quiet runs keep the workers' output in
    Ray's own log files (named in pipeline.log).
    """
    if level not in LOG_LEVELS:
        raise ValueError(f"pipeline.log_level {level!r} must be one of {LOG_LEVELS}")
    verbose = level != "warning"
    os.environ["RAY_LOG_TO_DRIVER"] = "1" if verbose else "0"
    os.environ.setdefault("CLIP_TRAIN_NO_PROGRESS", "0" if verbose else "1")  # the workers' bar: only where shown
    url = f"{out_root.rstrip('/')}/logs/pipeline.log"
    if is_remote(url):
        local = os.path.join(tempfile.mkdtemp(prefix="clip-logs-"), "pipeline.log")  # uploaded by finish()
    else:
        local = os.path.abspath(url.removeprefix("file://"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
    handler = logging.FileHandler(local, mode="a", encoding="utf-8")
    handler.setFormatter(_FileFormatter(_FORMAT))
    handler.set_name("clip-pipeline-file")
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == "clip-pipeline-file":  # a second flow run in this process: one file handler
            root.removeHandler(h)
            h.close()
        elif isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            h.setLevel(logging.WARNING if not verbose else logging.NOTSET)  # Prefect's console handler
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if level == "debug" else logging.INFO)
    if level != "debug":
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prefect API call otherwise
    logging.captureWarnings(True)
    py_warnings = logging.getLogger("py.warnings")  # warnings outside a stage: the file only
    py_warnings.handlers[:] = [handler]
    py_warnings.propagate = False
    _state.update(log_file=local, log_url=url if is_url(url) else local, verbose=verbose, handler=handler)
    return url


# "token authentication is enabled" (our default for a local Ray, README "Security defaults") and "progress bars
# disabled" (ingest shows its own bar instead of Ray Data's)
_RAY_NOTICES = ("ray._private.authentication.authentication_token_setup", "ray.data._internal.progress")


def quiet_ray(data: bool = False) -> None:
    """Ray's driver-side logger writes to stderr itself; in a quiet run its records go the root logger's way instead
    (the file; warnings also to the console). Ray's own handler is muted, not removed: ray.init re-formats it."""
    if _state.get("handler") is None or _state.get("verbose"):
        return
    import ray  # configures the "ray" logger

    if data:
        import ray.data  # noqa: F401  (configures the "ray.data" logger, with a stderr handler of its own)

    for name in ("ray", "ray.data"):  # Ray Data keeps its own stderr handler (and a file one, left as it is)
        log = logging.getLogger(name)
        for h in log.handlers:
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stderr, sys.stdout):
                h.setLevel(logging.CRITICAL + 1)
        log.propagate = True
    for name in _RAY_NOTICES:  # warnings that tell a quiet run nothing it must act on: the file only
        log = logging.getLogger(name)
        log.handlers[:] = [_state["handler"]]
        log.propagate = False


def finish() -> None:
    """Flush the log file; for a remote OUT, upload it (whole, atomically) to OUT/logs/pipeline.log."""
    handler, local, url = _state.get("handler"), _state.get("log_file"), _state.get("log_url")
    if handler is None:
        return
    handler.flush()
    if url and local and is_remote(url):
        from components.io import write_atomic

        with open(local, encoding="utf-8") as f:
            write_atomic(url, f.read())


# ----------------------------------------------------------------------------- per stage
@contextlib.contextmanager
def stage(name: str, position: str) -> Iterator[None]:
    """A spinner (a bar once `advance` knows a total) while the stage runs, in a terminal; nothing left behind."""
    if not console.is_terminal:
        yield
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task(f"[{position}] {name}", total=None)
        _state.update(progress=progress, task=task)
        try:
            yield
        finally:
            _state.update(progress=None, task=None)


def advance(completed: int, total: int) -> None:
    """Move the current stage's bar (a no-op outside `stage`)."""
    progress, task = _state.get("progress"), _state.get("task")
    if progress is not None:
        progress.update(task, completed=completed, total=total)


@contextlib.contextmanager
def follow_training(metrics_url: str, total_steps: int, every_s: float = 1.0) -> Iterator[None]:
    """Drive the stage bar from rank 0's metrics.jsonl while training runs elsewhere (Ray workers); Ray kept quiet."""
    import json

    import fsspec

    quiet_ray()
    stop = threading.Event()

    def poll() -> None:
        fs, path = fsspec.core.url_to_fs(metrics_url)
        while not stop.wait(every_s):
            with contextlib.suppress(Exception):  # absent at first; a half-visible rewrite is read next time
                lines = fs.cat_file(path).decode().strip().splitlines()
                if lines:
                    advance(int(json.loads(lines[-1])["step"]), total_steps)

    thread = threading.Thread(target=poll, name="clip-train-progress", daemon=True)
    if _state.get("progress") is not None:  # a terminal: something to draw
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=5)
        ray = sys.modules.get("ray")
        with contextlib.suppress(Exception):  # where the workers' own output went
            logging.getLogger(__name__).info("Ray worker logs: %s", ray._private.worker._global_node.get_logs_dir_path())


@contextlib.contextmanager
def collect_warnings(found: list[dict[str, Any]]) -> Iterator[None]:
    """Python warnings raised while a stage runs, counted per (category, message) into `found`, and logged once each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            counts: dict[tuple[str, str], dict[str, Any]] = {}
            log = logging.getLogger("py.warnings")
            for w in caught:
                first = (str(w.message).strip().splitlines() or [""])[0][:300]
                if issubclass(w.category, _HIDDEN):  # what Python itself hides by default: the file only
                    log.debug("%s at %s:%d: %s", w.category.__name__, w.filename, w.lineno, first)
                    continue
                entry = counts.setdefault((w.category.__name__, first), {"category": w.category.__name__, "message": first,
                                          "count": 0, "where": f"{os.path.basename(w.filename)}:{w.lineno}"})  # fmt: skip
                entry["count"] += 1
            found.extend(counts.values())
            for e in found:
                log.warning("%s x%d at %s: %s", e["category"], e["count"], e["where"], e["message"])


_HIDDEN = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


# ----------------------------------------------------------------------------- what each stage says
def _pct(v: Any) -> str:
    return f"{100 * v:.1f}%" if isinstance(v, (int, float)) else "-"


def headline(name: str, s: dict[str, Any]) -> str:
    """The one result a person wants from stage `name`'s summary."""
    if "skipped" in s:
        return f"skipped: {s['skipped']}"
    if name == "synth":
        return f"{s.get('train_pairs')} training pairs in {s.get('shards')} shards"
    if name == "ingest":
        reasons = ", ".join(f"{k.split('/', 1)[1]} {v}" for k, v in s.items() if k.startswith("quarantined/"))
        return f"{s.get('ingested')} of {s.get('input')} ingested, {s.get('quarantined')} quarantined" + (
            f" ({reasons})" if reasons else ""
        )
    if name == "validate":
        return "passed" if s.get("passed") else f"FAILED: {s.get('failed')}"
    if name == "dedup":
        return (
            f"{s.get('dedup/exact_pairs', 0)} exact + {s.get('dedup/near_pairs', 0)} near duplicate pairs "
            f"({_pct(s.get('dedup/duplicate_rate'))} of rows), policy {s.get('dedup/policy')}"
        )
    if name == "train":
        how = f"{s.get('strategy')}, {s.get('workers')} worker(s)"
        resumed = s.get("training/resumed_from_step")
        how += f"; resumed from step {resumed}" if resumed else f"; from {s.get('training/init_from') or 'scratch'}"
        return f"final loss {s.get('loss', float('nan')):.3f} after {s.get('steps')} steps ({how})"
    if name == "evaluate":
        top1 = {k.split("/")[0]: v for k, v in s.items() if k.endswith("zeroshot_classification/acc1")}
        return "zero-shot top-1 " + ", ".join(f"{k} {_pct(v)}" for k, v in top1.items()) if top1 else "no zero-shot results"
    if name == "audit":
        verdict = "gate passed" if s.get("gate/passed") else "GATE FAILED"
        return f"{s.get('line', 'overlap audited')}; {verdict}"
    if name == "bias":
        return "gate passed" if s.get("gate", "passed") == "passed" else f"GATE FAILED: {s.get('gate')}"
    if name == "register":
        head = f"promoted as v{s.get('version')}" if s.get("promoted") else f"v{s.get('version')} not promoted"
        return f"{head}: {s.get('reason')}"
    if name == "report":
        return f"first screen: {s.get('verdict', '')}"
    if "line" in s:
        return str(s["line"])
    return ", ".join(f"{k}={v}" for k, v in list(s.items())[:4])


def stage_line(name: str, seconds: float, summary: dict[str, Any]) -> None:
    """The line a finished stage leaves on screen."""
    text = headline(name, summary)
    n_warn = sum(w.get("count", 1) for w in summary.get("warnings", []) or [])
    if n_warn:
        text += f" [{n_warn} warning(s): see the report]"
    console.print(f"[green]✓[/] {name:<9}{seconds:7.1f} s  {text}", soft_wrap=True)


def note(text: str) -> None:
    """A line that is not a stage's (e.g. the scheduled retrain's decision)."""
    console.print(f"  {text}", soft_wrap=True)


def failed_line(name: str, seconds: float, error: BaseException) -> None:
    """The line a failed stage leaves (the traceback is in the log file and in Prefect's error log)."""
    console.print(f"[red]✗[/] {name:<9}{seconds:7.1f} s  {type(error).__name__}: {str(error)[:600]}", soft_wrap=True)
    if _state.get("log_url"):
        console.print(f"full log: {_state['log_url']}", soft_wrap=True)


def final_table(results: dict[str, dict[str, Any]], report: str | None, total_s: float) -> None:
    """Stage, time and headline for every stage; then where the report and the full log are."""
    table = Table(title=f"clip-pipeline finished in {total_s:.0f} s", title_justify="left", show_edge=False)
    table.add_column("stage")
    table.add_column("time", justify="right")
    table.add_column("result", overflow="fold")
    for name, s in results.items():
        if not isinstance(s, dict) or name.startswith("_"):
            continue
        table.add_row(name, f"{s.get('wall_s', s.get('compute_s', 0)):.1f} s", headline(name, s))
    console.print(table)
    if report:
        console.print(f"report: [bold]{report}[/]", soft_wrap=True)
    if _state.get("log_url"):
        console.print(f"full log: {_state['log_url']}", soft_wrap=True)
