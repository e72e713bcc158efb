"""Local working copies for stages whose components read and write local directories (evaluate, bias).

For a local path these are no-ops. For a URL (s3://, gs://, memory://) an input is downloaded to a
temporary directory, and an output is built in one and then published to the URL in one go
through `atomic_dir`, so a failed stage leaves the previous output (or none), never half of one.
Credentials come from the environment / fsspec configuration only, as everywhere else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import fsspec

from components.data.storage import atomic_dir
from components.io import is_remote


def _local(url: str) -> str:
    return url.removeprefix("file://")


def download(url: str, dest: str) -> bool:
    """Copy the directory (or file) at `url` to local `dest`; False when it does not exist."""
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        return False
    if fs.isdir(path):
        os.makedirs(dest, exist_ok=True)
        for src in fs.find(path):
            rel = src[len(path.rstrip("/")) + 1 :]
            os.makedirs(os.path.dirname(os.path.join(dest, rel)) or ".", exist_ok=True)
            fs.get_file(src, os.path.join(dest, rel))
    else:
        fs.get_file(path, dest)
    return True


@contextlib.contextmanager
def local_input(url: str) -> Iterator[str]:
    """A local path holding `url`'s files (the path itself when it is local); a missing URL raises FileNotFoundError."""
    if not is_remote(url):
        yield _local(url)
        return
    tmp = tempfile.mkdtemp(prefix="clip-in-")
    try:
        dest = os.path.join(tmp, url.rstrip("/").rsplit("/", 1)[-1])  # keeps the directory's name (dataset names)
        if not download(url, dest):
            raise FileNotFoundError(f"{url}: not found")
        yield dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def local_output(url: str, keep: tuple[str, ...] = ()) -> Iterator[str]:
    """A local directory that becomes `url` when the block succeeds (the path itself when it is local).

    `keep`: sub-directories of an existing `url` to download first (e.g. an embedding cache), so
    they carry over into the new output; "" keeps all of it.
    """
    if not is_remote(url):
        os.makedirs(_local(url), exist_ok=True)
        yield _local(url)
        return
    tmp = tempfile.mkdtemp(prefix="clip-out-")
    try:
        for sub in keep:
            download("/".join(p for p in (url.rstrip("/"), sub) if p), os.path.join(tmp, sub))
        yield tmp
        publish(tmp, url)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(local_dir: str, url: str) -> None:
    """Upload every file under `local_dir` to `url`, replacing what was there, all or nothing."""
    with atomic_dir(url) as target:
        fs, root = fsspec.core.url_to_fs(target)
        for dirpath, _, files in os.walk(local_dir):
            for name in files:
                src = os.path.join(dirpath, name)
                rel = os.path.relpath(src, local_dir).replace(os.sep, "/")
                fs.put_file(src, f"{root.rstrip('/')}/{rel}")


@contextlib.contextmanager
def local_model_dir(url: str, model_config: str | None = None, tokenizer: str | None = None) -> Iterator[str]:
    """A local model directory for any model input `clip_core.load_model` reads.

    A model directory of this project (with no overrides) is used as it is. Anything else (an
    open_clip checkpoint or hub dir, OpenAI's file) is imported into a temporary model directory
    for the run: the stages key their caches and records on the directory's files, so every
    format reaches them in that one shape, with its provenance.
    """
    from clip_core import import_model
    from clip_core.hub import detect_format

    with local_input(url) as local:
        if model_config is None and tokenizer is None and detect_format(local) == "model-dir":
            yield local
            return

        tmp = tempfile.mkdtemp(prefix="clip-model-")
        try:
            dest = os.path.join(tmp, os.path.basename(local.rstrip("/")).split(".")[0] or "model")  # the name results show
            import_model(local, dest, model_config=model_config, tokenizer=tokenizer)
            yield dest
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
