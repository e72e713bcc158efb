"""Launch a per-worker training function on N Ray Train workers (local Ray on demand, or an existing cluster)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

from infra.ray_auth import prepare_local_ray

log = logging.getLogger(__name__)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to `address` / RAY_ADDRESS (a cluster or `ray://` client), else start a local Ray.

    A local Ray runs with token authentication (Ray 2.60's default for a new local cluster; the token
    file is created owner-only first, see infra/ray_auth.py) unless the user exported
    RAY_AUTH_MODE=disabled. Connecting to a cluster: Ray's own rules (RAY_AUTH_MODE=token and the
    cluster's token; `auto` finds a local token by itself). Worker output reaches this process's console
    as Ray's RAY_LOG_TO_DRIVER says (default on; a quiet `clip-pipeline run` turns it off and points its
    log file at Ray's). The temp dir is short because Ray's socket paths must stay under 107 characters.
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_TRACKING", "1")  # the dashboard's Train runs view
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        # a cluster's workers run with the cluster's environment, not ours: pass our logging settings along
        ray.init(address=address, log_to_driver=None, runtime_env={"env_vars": worker_env()})
        return
    prepare_local_ray()
    tmp = os.environ.get("CLIP_RAY_TMPDIR") or os.path.join(tempfile.gettempdir(), f"ray-clip-{os.getuid()}")
    ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, _temp_dir=tmp, log_to_driver=None)


# Settings the training workers read (progress bars, log levels); a local Ray's workers inherit them anyway.
WORKER_ENV = ("CLIP_TRAIN_NO_PROGRESS", "RAY_TRAIN_ENABLE_STATE_TRACKING", "TQDM_DISABLE", "PYTHONUNBUFFERED",
              "PYTHONWARNINGS", "LOGLEVEL", "NCCL_DEBUG", "TORCH_CPP_LOG_LEVEL", "TORCH_DISTRIBUTED_DEBUG")  # fmt: skip


def worker_env() -> dict[str, str]:
    """The WORKER_ENV variables set in this process, for Ray's runtime_env env_vars."""
    return {k: os.environ[k] for k in WORKER_ENV if k in os.environ}


def _ray_storage(storage_path: str) -> str:
    """Ray's own run directory: beside the checkpoints for local paths; URLs are passed through (pyarrow fs)."""
    if "://" not in storage_path or storage_path.startswith("file://"):
        path = os.path.abspath(storage_path.removeprefix("file://"))
        return os.path.join(path, "ray")
    return storage_path.rstrip("/") + "/ray"


def launch(
    train_fn: Callable[[dict[str, Any]], Any],
    fn_config: dict[str, Any],
    num_workers: int,
    use_gpu: bool,
    cpus_per_worker: int,
    storage_path: str,
    max_failures: int,
    address: str | None = None,
    run_name: str = "train",
    min_workers: int = 0,
) -> Any:
    """Run `train_fn(fn_config)` on `num_workers` workers with TorchTrainer; return the Ray `Result`.

    Workers form a torch.distributed group (NCCL on GPU, gloo on CPU). After a worker crash the
    whole group restarts (up to `max_failures` times) and `train_fn` resumes from its own checkpoints.
    With 0 < `min_workers` < `num_workers` the group is elastic: after losing a node it restarts with
    as many workers as the cluster still has room for (at least `min_workers`), and grows back when
    resources return; `train_fn` must then resume at a different world size.
    """
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    ensure_ray(address, num_cpus=None if address else max(os.cpu_count() or 1, num_workers * cpus_per_worker))
    workers: int | tuple[int, int] = (min_workers, num_workers) if 0 < min_workers < num_workers else num_workers
    trainer = TorchTrainer(
        train_fn,
        train_loop_config=fn_config,
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker={"CPU": cpus_per_worker}),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(
            name=run_name, storage_path=_ray_storage(storage_path), failure_config=FailureConfig(max_failures=max_failures)
        ),
    )
    result = trainer.fit()
    if result.error is not None:
        raise RuntimeError(f"training failed after {max_failures} restart(s): {result.error}") from result.error
    return result
