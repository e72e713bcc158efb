"""Champion/challenger model registry: a versioned JSON file on the storage root (any fsspec URL).

A challenger is promoted only if its gate metric beats the champion's by `min_gain`; every
decision (promoted or not) is appended with model, data version, metrics, git revision, time and
the training record (training data version, from scratch or from which champion, per-source sample
counts). A promoted model is copied to `<registry dir>/models/v<N>` (with `archive`), so the champion
survives the next training run overwriting OUT/train/model, and `train.init_from: champion` finds it.

Writers take a lock for the whole read-decide-write (and the archive copy), so two runs registering at
once both keep their entry, with distinct versions: a lock file `<registry>.lock` beside a local
registry (any process on the host, or on hosts sharing the file system if it honours flock, as NFS v4
does). Object stores have no lock to take: for them the lock file is in the local temp dir (keyed by
the user and the URL), so one user's runs on one host never lose an entry, but two hosts registering into the same s3:// registry
at the same moment can (the last write wins): register from one place, e.g. the scheduled deployment.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import fsspec
from filelock import FileLock

from components.io import write_atomic

LOCK_TIMEOUT_S = 600  # the archive copy of a large model happens under the lock


@dataclass(frozen=True)
class RegistryConfig:
    """Section `registry`: which metric decides promotion and by how much it must improve."""

    metric: str = "shape/zeroshot_classification/acc1"  # a key of the evaluation stage's flat metrics.json
    min_gain: float = 0.0
    higher_is_better: bool = True
    path: str = "registry/registry.json"  # relative to pipeline.out_root unless it is a URL

    def __post_init__(self) -> None:
        if self.min_gain < 0:
            raise ValueError(f"registry.min_gain must be >= 0, got {self.min_gain}")


@dataclass(frozen=True)
class RegistryDecision:
    """What `register_model` decided and why."""

    promoted: bool
    version: int
    reason: str
    champion: dict[str, Any] | None
    data: str = ""  # one line: which data this model saw, against the champion's


def load_registry(url: str) -> dict[str, Any]:
    """Read the registry file; a missing file is an empty registry."""
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        return {"champion": None, "entries": []}
    with fs.open(path, "r") as f:
        return json.load(f)


def save_registry(url: str, registry: dict[str, Any]) -> None:
    """Write atomically (a temp file beside it, then a rename; one upload on object stores)."""
    write_atomic(url, json.dumps(registry, indent=2))


def lock_path(url: str) -> str:
    """The lock file of a registry: beside a local one; in the temp dir for an object store (see the module doc)."""
    if "://" not in url or url.startswith("file://"):
        return url.removeprefix("file://") + ".lock"
    key = hashlib.sha256(url.encode()).hexdigest()[:16]  # per user: another user's lock file in /tmp is not ours to open
    return os.path.join(tempfile.gettempdir(), f"clip-registry-{os.getuid()}-{key}.lock")


@contextlib.contextmanager
def registry_lock(url: str, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the registry's writer lock (blocking up to `timeout` s, then an error naming the lock file)."""
    path = lock_path(url)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with FileLock(path, timeout=timeout):
            yield
    except TimeoutError as e:  # filelock.Timeout is a TimeoutError
        raise TimeoutError(f"registry {url}: another process has held its lock {path} for over {timeout:.0f} s "
                           "(the lock goes with its holder: look for a run still registering)") from e  # fmt: skip


def register_model(
    url: str,
    model_uri: str,
    metrics: dict[str, float],
    cfg: RegistryConfig,
    data_version: str | None = None,
    git_revision: str | None = None,
    now: dt.datetime | None = None,
    training: dict[str, Any] | None = None,
    archive: bool = False,
) -> RegistryDecision:
    """Record a challenger and promote it if it beats the champion on `cfg.metric` by `cfg.min_gain`.

    `training`: the training stage's record (data_version, init_from, n_samples, sources); `archive`: copy a
    promoted model into the registry (see the module docstring)."""
    if cfg.metric not in metrics:
        raise KeyError(f"registry.metric {cfg.metric!r} is not among the evaluation metrics: {sorted(metrics)[:20]}")
    with registry_lock(url):
        return _register(url, model_uri, metrics, cfg, data_version, git_revision, now, training, archive)


def _register(
    url: str,
    model_uri: str,
    metrics: dict[str, float],
    cfg: RegistryConfig,
    data_version: str | None,
    git_revision: str | None,
    now: dt.datetime | None,
    training: dict[str, Any] | None,
    archive: bool,
) -> RegistryDecision:
    """register_model's read-decide-write, under the registry lock."""
    registry = load_registry(url)
    value = float(metrics[cfg.metric])
    champion = registry["champion"]
    if champion is None:
        promoted, reason = True, f"first model: {cfg.metric}={value:.4f}"
    else:
        best = float(champion["metrics"][cfg.metric])
        gain = (value - best) if cfg.higher_is_better else (best - value)
        promoted = gain > cfg.min_gain  # a tie keeps the champion
        verb = "promoted" if promoted else "kept champion"
        reason = (
            f"{verb}: {cfg.metric} {value:.4f} vs champion v{champion['version']} {best:.4f} "
            f"(gain {gain:+.4f}, needs > {cfg.min_gain})"
        )
    version = len(registry["entries"]) + 1
    data = data_line(training, champion)
    entry = {
        "version": version,
        "model": model_uri,
        "metrics": metrics,
        "data_version": data_version,
        "git_revision": git_revision,
        "time": (now or dt.datetime.now(dt.timezone.utc)).isoformat(),
        "promoted": promoted,
        "reason": reason,
        "training": training,
        "data": data,
    }
    if promoted and archive:
        entry["trained_at"], entry["model"] = model_uri, archive_model(model_uri, url, version)
    registry["entries"].append(entry)
    if promoted:
        registry["champion"] = entry
    save_registry(url, registry)
    return RegistryDecision(promoted, version, reason, registry["champion"], data)


def data_line(training: dict[str, Any] | None, champion: dict[str, Any] | None) -> str:
    """What data the challenger saw against the champion's, in one line ("" without a training record)."""
    if not training:
        return ""
    start = training.get("init_from", "scratch")
    now, n = training.get("data_version"), training.get("n_samples")
    old = (champion or {}).get("training") or {}
    if not old:
        return f"trained on {n} samples (data {now}) from {start}"
    sources = training.get("sources") or {}
    new = sorted(set(sources) - set(old.get("sources") or {}))
    same = "same data" if old.get("data_version") == now else f"data {old.get('data_version')} -> {now}"
    return (f"{same}: {old.get('n_samples')} -> {n} samples, +{sum(sources[s] for s in new)} from {len(new)} new "
            f"source(s); trained from {start}")  # fmt: skip


def archive_model(model_uri: str, registry_url: str, version: int) -> str:
    """Copy the model directory to `<registry dir>/models/v<version>` (published whole) and return its URL."""
    from components.data.storage import atomic_dir

    dest = f"{registry_url.rsplit('/', 1)[0] if '/' in registry_url else '.'}/models/v{version}"
    src_fs, src = fsspec.core.url_to_fs(model_uri)
    with atomic_dir(dest) as tmp:
        dst_fs, root = fsspec.core.url_to_fs(tmp)
        for f in src_fs.find(src):
            target = f"{root}/{f[len(src.rstrip('/')) + 1 :]}"
            dst_fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            with src_fs.open(f, "rb") as r, dst_fs.open(target, "wb") as w:
                shutil.copyfileobj(r, w, 1 << 20)
    return dest


def decision_dict(decision: RegistryDecision) -> dict[str, Any]:
    """JSON-ready form of a decision."""
    return asdict(decision)
