"""CLIP_benchmark's webdataset layout (what `clip_benchmark_export_wds` writes), local or any fsspec URL.

Why it exists: it is how CLIP_benchmark ships its ~40 eval sets (e.g. the `clip-benchmark/wds_*` sets on
the Hugging Face hub), so a user can score the exact files CLIP_benchmark scores. Layout:
`classnames.txt`, `zeroshot_classification_templates.txt`, optional `dataset_type.txt` (`retrieval` |
`multilabel`), `test/` and optional `train/` each with `nshards.txt` and `0.tar .. N-1.tar`; a sample is
an image (`.webp|.png|.jpg|.jpeg`) plus `.cls` (label), `.txt` (captions, one per line) or `.npy` (multi-hot).

Tars are streamed with webdataset's expander (as the training reader does), never extracted: once here
for labels and the fingerprint (sha256 of the tar bytes), and once more, in order, when images are encoded.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dataset import EvalDataset, load_templates

IMAGE_EXTS = ("webp", "png", "jpg", "jpeg")  # CLIP_benchmark's order: the first present is the image
DATASET_TYPES = ("classification", "retrieval", "multilabel")
log = logging.getLogger(__name__)


class _Hashing:
    """A read-only stream that hashes what passes through it (the fingerprint costs no second read)."""

    def __init__(self, f: Any, h: Any):
        self.f, self.h = f, h

    def read(self, n: int = -1) -> bytes:
        b = self.f.read(n)
        self.h.update(b)
        return b

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def iter_shard(fs: Any, path: str, h: Any = None) -> Iterator[dict[str, Any]]:
    """Samples (`__key__` + one entry per extension) of one tar, grouped by webdataset."""
    import webdataset as wds

    with fs.open(path, "rb") as raw:
        f = _Hashing(raw, h) if h is not None else raw
        url = fs.unstrip_protocol(path)
        yield from wds.tariterators.group_by_keys(wds.tariterators.tar_file_expander([{"url": url, "stream": f}]))
        if h is not None:
            f.drain()  # the end-of-archive padding tarfile leaves unread is part of the file's identity


@dataclass
class TarImages:
    """The image members of a split's shards, streamed in order; a worker takes every n-th shard."""

    fs: Any
    shards: list[str]
    rows: list[dict[str, tuple[int, str]]]  # per shard: key -> (row index, image extension)
    fingerprint: str
    locations: list[str]

    def __len__(self) -> int:
        return sum(len(r) for r in self.rows)

    def stream(self, worker: int, n_workers: int) -> Iterator[tuple[int, bytes | Exception]]:
        for j in range(worker, len(self.shards), n_workers):
            pending = dict(self.rows[j])
            try:
                for s in iter_shard(self.fs, self.shards[j]):
                    row = pending.pop(s["__key__"], None)
                    if row is not None:
                        yield row[0], s[row[1]]
            except Exception as e:  # a shard that breaks mid-way: its remaining images count as unreadable
                for row, _ in pending.values():
                    yield row, e
                continue
            for row, _ in pending.values():
                yield row, FileNotFoundError(f"{self.shards[j]}: sample gone since the dataset was read")


def load_wds(url: str, name: str | None = None, with_train: bool = True) -> EvalDataset:
    """Read a CLIP_benchmark webdataset directory; errors name the file and what to add."""
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(url)
    root = root.rstrip("/")
    h = hashlib.sha256()

    def text(fname: str, required: str = "") -> str | None:
        p = f"{root}/{fname}"
        if not fs.exists(p):
            if required:
                raise FileNotFoundError(f"{url}/{fname}: missing; {required}")
            return None
        data = fs.cat_file(p)
        h.update(fname.encode() + b"\0" + data)
        return data.decode("utf-8")

    dtype = (text("dataset_type.txt") or "classification").strip().lower()
    if dtype not in DATASET_TYPES:
        raise ValueError(f"{url}/dataset_type.txt: {dtype!r} is not one of {list(DATASET_TYPES)}")
    classnames: list[str] = []
    if dtype != "retrieval":
        need = "a classification set lists its class names there, one per line, in label order"
        classnames = [c.strip() for c in (text("classnames.txt", need) or "").splitlines() if c.strip()]
    tmpl = text("zeroshot_classification_templates.txt")
    templates = [t.strip() for t in tmpl.splitlines() if t.strip()] if tmpl else load_templates("imagenet")

    splits = ["test"] + (["train"] if with_train and fs.exists(f"{root}/train/nshards.txt") else [])
    shards, rows, locations, split_col, keys = [], [], [], [], []
    labels, targets, captions = [], [], []
    n_bad = 0
    for split in splits:
        n = int(text(f"{split}/nshards.txt", "every split folder holds nshards.txt (its number of tars) and 0.tar..N-1.tar"))
        first = len(locations)
        for i in range(n):
            path = f"{root}/{split}/{i}.tar"
            if not fs.exists(path):
                raise FileNotFoundError(f"{url}/{split}/{i}.tar: missing ({split}/nshards.txt says {n} shards)")
            shard_rows: dict[str, tuple[int, str]] = {}
            for s in iter_shard(fs, path, h):
                key, where = s["__key__"], f"{url}/{split}/{i}.tar: sample {s['__key__']!r}"
                ext = next((e for e in IMAGE_EXTS if e in s), None)
                if ext is None:
                    log.warning("%s: no image member (.webp/.png/.jpg/.jpeg); skipped", where)
                    n_bad += 1
                    continue
                if dtype == "retrieval":
                    captions.append(_member(s, "txt", where).decode("utf-8").splitlines())
                elif dtype == "multilabel":
                    targets.append(_multihot(_member(s, "npy", where), len(classnames), where))
                else:
                    labels.append(_label(_member(s, "cls", where), len(classnames), where))
                shard_rows[key] = (len(locations), ext)
                locations.append(f"{fs.unstrip_protocol(path)}#{key}.{ext}")
                split_col.append(split)
                keys.append(key)
            shards.append(path)
            rows.append(shard_rows)
        if len(locations) == first:
            raise ValueError(f"{url}/{split}: no samples with an image in its {n} shard(s); an eval split must not be empty")
    fingerprint = h.hexdigest()
    return EvalDataset(
        name=name or root.rsplit("/", 1)[-1],
        root=url,
        images=locations,
        labels=np.array(labels, dtype=np.int64) if dtype == "classification" else None,
        targets=np.stack(targets) if dtype == "multilabel" else None,
        captions=captions if dtype == "retrieval" else None,
        classnames=classnames,
        templates=templates,
        split=np.array(split_col),
        keys=keys,
        task=dtype,
        source=TarImages(fs, shards, rows, fingerprint, locations),
        eval_split="test",
        fingerprint=fingerprint,
        format="wds",
        n_corrupt=n_bad,
    )


def _member(s: dict[str, Any], ext: str, where: str) -> bytes:
    if ext not in s:
        raise ValueError(f"{where}: no .{ext} member (this set's dataset_type needs one per sample)")
    return s[ext]


def _label(data: bytes, n_classes: int, where: str) -> int:
    try:
        label = int(data.decode().strip())
    except ValueError:
        raise ValueError(f"{where}: .cls holds {data[:20]!r}, not an integer label") from None
    if not 0 <= label < n_classes:
        raise ValueError(f"{where}: label {label} outside [0, {n_classes}) (classnames.txt has {n_classes} names)")
    return label


def _multihot(data: bytes, n_classes: int, where: str) -> np.ndarray:
    v = np.load(io.BytesIO(data), allow_pickle=False).reshape(-1)
    if len(v) != n_classes:
        raise ValueError(f"{where}: .npy has {len(v)} entries for {n_classes} classes (classnames.txt)")
    return v.astype(np.float32)
