"""Where an eval set's images come from: files or URLs, tar members, a torchvision dataset (one protocol, one encoder).

Why a protocol and not a list of paths: webdataset members and torchvision samples are not files,
yet the embedding cache and the encoder must treat every format alike. A source is either indexed
(`load(i)`, random access: files, torchvision) or streamed (`stream(worker, n_workers)`: tar shards,
read in order, never one member at a time).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from PIL import Image

from components.io import is_url


def open_image(location: str) -> Image.Image:
    """A local path or any fsspec URL -> RGB PIL image."""
    if is_url(location):
        import fsspec

        with fsspec.open(location, "rb") as f:
            return Image.open(io.BytesIO(f.read())).convert("RGB")
    with Image.open(location) as im:
        return im.convert("RGB")


def decode_image(data: bytes) -> Image.Image:
    """Image file bytes (a tar member) -> RGB PIL image."""
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


@runtime_checkable
class IndexedImages(Protocol):
    """Random-access images; `fingerprint` changes whenever the images may have (part of the cache key)."""

    fingerprint: str

    def __len__(self) -> int: ...

    def load(self, i: int) -> Image.Image: ...


@runtime_checkable
class StreamedImages(Protocol):
    """Images read in order: `stream` yields (row index, image bytes or an Exception) for one worker's share."""

    fingerprint: str

    def __len__(self) -> int: ...

    def stream(self, worker: int, n_workers: int) -> Iterator[tuple[int, bytes | Exception]]: ...


ImageSource = IndexedImages | StreamedImages


class FileImages:
    """Image files or URLs (the manifest and ImageFolder formats)."""

    def __init__(self, locations: Sequence[str], fingerprint: str = ""):
        self.locations = list(locations)
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.locations)

    def load(self, i: int) -> Image.Image:
        return open_image(self.locations[i])


def tree_fingerprint(root: str | Path, *extra: str) -> str:
    """sha256 over every file's relative path, size and mtime under `root` (plus `extra` strings).

    Stat, not content: hashing a 150 GB ImageNet tree per run would cost more than encoding it. A copy
    that changes mtimes therefore re-encodes once; an image edited in place is still noticed.
    """
    h = hashlib.sha256()
    for s in extra:
        h.update(s.encode() + b"\0")
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            p = Path(dirpath) / f
            st = p.stat()
            h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
