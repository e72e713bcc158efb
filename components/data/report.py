"""Console output of the data stage: a rich progress bar and the final summary table."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; a no-op when disabled."""
    if not enabled:
        yield lambda n: None
        return
    with Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as progress:
        task = progress.add_task("ingest", total=total)
        yield lambda n: progress.advance(task, n)


def print_summary(result: Any, upstream: dict) -> None:
    """The table a person reads at a glance after ingest."""
    t = Table(title=f"ingest -> {result.out_dir}")
    t.add_column("", style="bold")
    t.add_column("samples", justify="right")
    t.add_row("input", str(result.n_input))
    t.add_row("ingested", str(result.n_ingested), style="green")
    t.add_row("quarantined", str(result.n_quarantined), style="red" if result.n_quarantined else None)
    for reason, n in sorted(result.by_reason.items(), key=lambda kv: -kv[1]):
        t.add_row(f"  {reason}", str(n))
    if upstream.get("n_stats_files"):
        t.add_row("img2dataset stats: successes", str(upstream["successes"]))
    t.add_row("shards written", str(result.n_shards))
    t.add_row("throughput", f"{result.samples_per_s:,.0f} samples/s in {result.seconds:.1f} s")
    Console().print(t)
