"""Shared output helpers for the stages: JSON-safe conversion and atomic writes (temp file + rename, or one upload)."""

from __future__ import annotations

import json
import math
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.retry import full_error, is_full


def json_safe(obj: Any) -> Any:
    """JSON-safe: numpy scalars -> Python, NaN/inf -> None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def is_url(location: Path | str) -> bool:
    """A URL with a protocol (`s3://`, `memory://`, `file://`, ...) rather than a plain local path."""
    return "://" in str(location)


def is_remote(location: Path | str) -> bool:
    """A URL that is not a local file: `file://` URLs and plain paths are local."""
    return is_url(location) and not str(location).startswith("file://")


def absolute(location: str) -> str:
    """URLs as they are, local paths made absolute (Ray workers run in another working directory)."""
    return location if is_url(location) else os.path.abspath(location)


def warn_if_node_local(location: str, what: str) -> None:
    """On a Ray cluster of several nodes, warn that a local path must be readable at the same path on every node."""
    import logging

    import ray

    if not is_remote(location) and sum(1 for n in ray.nodes() if n.get("Alive")) > 1:
        logging.getLogger(__name__).warning(
            "%s %s is a local path: every Ray node must see it there (shared filesystem), or use an s3://-style URL",
            what,
            location,
        )


def is_absolute_ref(ref: str) -> bool:
    """A manifest's image reference that stands on its own (a URL or an absolute path), not relative to the manifest."""
    return is_url(ref) or ref.startswith("/")


def current_umask() -> int:
    """This process's umask (Linux: read from /proc, since setting it to read it races with other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def create_temp_beside(path: Path) -> str:
    """A new empty temp file in `path`'s directory (name unique, created exclusively)."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return str(tmp)
        except FileExistsError:
            continue


def publish_file(tmp: str, path: Path | str) -> None:
    """Rename a finished temp file onto `path` with the mode a plain write would give (0666 less the umask).

    Not a fixed mode: mkstemp's and safetensors' 0600 would hide outputs from the group the user shares them
    with, and a fixed 0644 would override a stricter umask (077: nothing readable by others)."""
    os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, path)


def _atomic(path: Path | str, write: Any) -> Path | str:
    if is_remote(path):
        return _atomic_remote(str(path), write)
    path = Path(str(path).removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = create_temp_beside(path)
    try:
        write(tmp)
        publish_file(tmp, path)
    except OSError as e:
        if is_full(e):  # name the file the stage was writing, not the temp file
            raise full_error("write", str(path), e) from e
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _atomic_remote(url: str, write: Any) -> str:
    """Object stores: build the file locally, then upload it in one PUT (an object appears whole or not at all)."""
    import fsspec

    fd, tmp = tempfile.mkstemp(prefix="clip-upload-", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        fs, path = fsspec.core.url_to_fs(url)
        fs.put_file(tmp, path)
    except OSError as e:
        if is_full(e):
            raise full_error("write", url, e) from e
        raise
    finally:
        os.unlink(tmp)
    return url


def write_atomic(path: Path | str, text: str) -> Path | str:
    """Atomically write a text file, so a crash never leaves a half file that looks whole."""
    return _atomic(path, lambda t: Path(t).write_text(text))


def write_json(path: Path | str, obj: Any) -> Path | str:
    """Atomically write JSON (NaN -> null)."""
    return write_atomic(path, json.dumps(json_safe(obj), indent=2))


def write_parquet(path: Path | str, df: pd.DataFrame) -> Path | str:
    """Atomically write a Parquet table."""
    return _atomic(path, lambda t: df.to_parquet(t, index=False))
