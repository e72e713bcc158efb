"""Champion/challenger model registry: a versioned JSON file on the storage root (any fsspec URL).

A challenger is promoted only if its gate metric beats the champion's by `min_gain`; every
decision (promoted or not) is appended with model, data version, metrics, git revision and time.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from typing import Any

import fsspec


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


def load_registry(url: str) -> dict[str, Any]:
    """Read the registry file; a missing file is an empty registry."""
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        return {"champion": None, "entries": []}
    with fs.open(path, "r") as f:
        return json.load(f)


def save_registry(url: str, registry: dict[str, Any]) -> None:
    """Write atomically: a temp file beside it, then a move."""
    fs, path = fsspec.core.url_to_fs(url)
    parent = path.rsplit("/", 1)[0] if "/" in path else "."
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp"
    with fs.open(tmp, "w") as f:
        json.dump(registry, f, indent=2)
    fs.mv(tmp, path)


def register_model(
    url: str,
    model_uri: str,
    metrics: dict[str, float],
    cfg: RegistryConfig,
    data_version: str | None = None,
    git_revision: str | None = None,
    now: dt.datetime | None = None,
) -> RegistryDecision:
    """Record a challenger and promote it if it beats the champion on `cfg.metric` by `cfg.min_gain`."""
    if cfg.metric not in metrics:
        raise KeyError(f"registry.metric {cfg.metric!r} is not among the evaluation metrics: {sorted(metrics)[:20]}")
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
    entry = {
        "version": version,
        "model": model_uri,
        "metrics": metrics,
        "data_version": data_version,
        "git_revision": git_revision,
        "time": (now or dt.datetime.now(dt.timezone.utc)).isoformat(),
        "promoted": promoted,
        "reason": reason,
    }
    registry["entries"].append(entry)
    if promoted:
        registry["champion"] = entry
    save_registry(url, registry)
    return RegistryDecision(promoted=promoted, version=version, reason=reason, champion=registry["champion"])


def decision_dict(decision: RegistryDecision) -> dict[str, Any]:
    """JSON-ready form of a decision."""
    return asdict(decision)
