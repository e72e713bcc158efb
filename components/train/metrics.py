"""Where training metrics go: a JSON-lines file on any fsspec URL, a progress bar, Ray Train and TensorBoard."""

from __future__ import annotations

import json
import logging
import os
import posixpath
from typing import Any

import fsspec
import psutil
import torch

from components.io import is_url
from components.retry import retry_io

log = logging.getLogger(__name__)


def memory_stats(device: torch.device) -> dict[str, float]:
    """Resident set size of this process and, on CUDA, the peak allocated memory (GiB)."""
    out = {"rss_gib": psutil.Process().memory_info().rss / 2**30}
    if device.type == "cuda":
        out["cuda_max_alloc_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def in_ray_session() -> bool:
    """True inside a function launched by a Ray Train trainer."""
    try:
        import ray.train

        ray.train.get_context()
        return True
    except (ImportError, RuntimeError):
        return False


def _summary_writer(logdir: str | None):
    """A TensorBoard writer from torch (needs `tensorboard`) or tensorboardX (same API); None if neither."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            log.warning("tensorboard: neither tensorboard nor tensorboardX is installed; logging to metrics.jsonl only")
            return None
    return SummaryWriter(logdir)


class MetricsLog:
    """Rank 0 writes `metrics.jsonl` and a progress bar; every rank reports to Ray (a collective in Train v2)."""

    def __init__(self, storage_url: str, rank: int, total_steps: int, start_step: int, tensorboard: bool = False):
        self.rank = rank
        self.ray = in_ray_session()
        self.fs, root = fsspec.core.url_to_fs(storage_url)
        self.path = posixpath.join(root, "metrics.jsonl")
        self.lines: list[str] = []
        self.bar = None
        self.tb = None
        if rank != 0:
            return
        self.fs.makedirs(root, exist_ok=True)
        if self.fs.exists(self.path):  # a resumed run keeps the history up to its checkpoint
            old = self.fs.cat_file(self.path).decode().splitlines()
            self.lines = [ln for ln in old if ln.strip() and json.loads(ln).get("step", 0) <= start_step]
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=total_steps,
            initial=start_step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            disable=os.environ.get("CLIP_TRAIN_NO_PROGRESS") == "1",
        )
        if tensorboard:
            self.tb = _summary_writer(os.path.join(root, "tensorboard") if not is_url(storage_url) else None)

    def advance(self, n: int = 1) -> None:
        """Move the progress bar."""
        if self.bar is not None:
            self.bar.update(n)

    def log(self, record: dict[str, Any]) -> None:
        """Append one record (rank 0) and report it to Ray Train (all ranks)."""
        if self.rank == 0:
            self.lines.append(json.dumps(record))
            # rewrite the whole (small) file: appends are not portable across object stores; idempotent, so retried
            body = ("\n".join(self.lines) + "\n").encode()
            retry_io(lambda: self.fs.pipe_file(self.path, body), "write metrics", self.path)
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{record.get('loss', float('nan')):.3f}", lr=f"{record.get('lr', 0):.2e}")
            if self.tb is not None:
                for k, v in record.items():
                    if isinstance(v, (int, float)) and k != "step":
                        self.tb.add_scalar(k, v, record["step"])
        if self.ray:
            import ray.train

            ray.train.report(record)

    def close(self) -> None:
        """Close the bar and TensorBoard writer."""
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
