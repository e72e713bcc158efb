"""EvalDataset (what every eval reader yields), the manifest-directory reader, and probe splits.

The manifest directory (manifest.csv, classnames.txt, templates.txt, dataset.json) is this project's
own format and its one reader lives here (evaluation, the audit and in-training zero-shot all call it,
on a local path or any fsspec URL); the other formats' readers are in `readers/`.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd

from components.io import is_absolute_ref, is_url

TEMPLATES_DIR = Path(__file__).parent / "templates"


def load_templates(name_or_path: str | Path = "imagenet") -> list[str]:
    """Prompt templates: a shipped list by name (`imagenet`: CLIP's 80) or a file, one `{c}` template per line."""
    path = Path(name_or_path)
    if not path.exists():
        path = TEMPLATES_DIR / f"{name_or_path}.txt"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class EvalDataset:
    """One evaluation set: images plus labels (or multi-hot targets, or captions), whatever format it came from."""

    name: str
    root: str
    images: list[str]  # a location per image (path, URL, `shard.tar#member`, `torchvision:NAME:split[i]`), source order
    labels: np.ndarray | None = None  # (N,) int64
    captions: list[list[str]] | None = None
    classnames: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    split: np.ndarray | None = None  # (N,) str: a manifest `split` column, or the format's train/test folders
    keys: list[str] | None = None
    shift_of: str | None = None
    task: str = "classification"
    manifest_sha256: str = ""
    # formats beyond the manifest directory
    source: Any = None  # an ImageSource (images.py) when the images are not files; None: the files in `images`
    targets: np.ndarray | None = None  # (N, C) multi-hot, multilabel sets (mAP)
    eval_split: str | None = None  # zero-shot/retrieval only on rows of this split (formats with a real test split)
    fingerprint: str = ""  # identity of the images for the embedding cache key (the manifest's sha256 for manifests)
    format: str = "manifest"
    n_corrupt: int = 0  # images dropped because they could not be decoded
    refs: list[str] | None = None  # the manifest's own `image` values (before resolving), source order
    # every manifest column as text ("" where empty), source order: what probes read beyond the known columns
    # (`group_<attr>` for bias probes, any column a probe's `true_label` format names); {} for other formats
    columns: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def has_classification(self) -> bool:
        return self.labels is not None and len(self.classnames) > 0

    @property
    def has_multilabel(self) -> bool:
        return self.targets is not None and len(self.classnames) > 0

    @property
    def has_retrieval(self) -> bool:
        return self.captions is not None

    def image_source(self) -> Any:
        """What the encoder reads: the format's own source, or the image files."""
        from .images import FileImages

        return self.source if self.source is not None else FileImages(self.images, self.fingerprint)

    def eval_rows(self) -> np.ndarray:
        """Row indices zero-shot and retrieval score: the `eval_split` rows, or every row."""
        if self.eval_split is None or self.split is None:
            return np.arange(len(self))
        return np.flatnonzero(self.split == self.eval_split)

    def without(self, rows: np.ndarray) -> EvalDataset:
        """A copy without `rows` (images that did not decode), counted in `n_corrupt`; only for after encoding."""
        keep = np.setdiff1d(np.arange(len(self)), rows)

        def take(x: Any) -> Any:
            if x is None:
                return None
            return x[keep] if isinstance(x, np.ndarray) else [x[i] for i in keep]

        return replace(
            self,
            images=take(self.images),
            labels=take(self.labels),
            captions=take(self.captions),
            split=take(self.split),
            keys=take(self.keys),
            targets=take(self.targets),
            refs=take(self.refs),
            source=None,  # rows no longer match the source's; features are already computed
            n_corrupt=self.n_corrupt + len(np.unique(rows)),
        )


def _join(root: str, name: str) -> str:
    """`name` inside a dataset directory: Path semantics for local directories, `/` joins for URLs."""
    return f"{root.rstrip('/')}/{name}" if is_url(root) else str(Path(root) / name)


def _resolve(root: str, image: str) -> str:
    if is_absolute_ref(image):
        return image
    return _join(root, image)


def load_eval_dataset(root: str | Path, default_templates: Sequence[str] | None = None) -> EvalDataset:
    """Read one evaluation directory (local path or any fsspec URL); errors name the file and what is wrong.

    Without templates.txt the prompts are `default_templates`, or CLIP's 80 ImageNet templates when None.
    """
    root = str(root).rstrip("/") if is_url(str(root)) else str(Path(root))
    fs, _ = fsspec.core.url_to_fs(root)

    def read(name: str) -> bytes | None:
        url = _join(root, name)
        return fs.cat_file(url) if fs.exists(url) else None

    manifest = _join(root, "manifest.csv")
    raw = read("manifest.csv")
    if raw is None:
        raise FileNotFoundError(f"{manifest}: missing; an eval dataset directory needs manifest.csv")
    df = pd.read_csv(io.BytesIO(raw), dtype={"image": str})
    if "image" not in df.columns:
        raise ValueError(f"{manifest}: no 'image' column (columns: {list(df.columns)})")
    meta = json.loads(read("dataset.json") or b"{}")
    names = read("classnames.txt")
    classnames = [c.strip() for c in names.decode().splitlines() if c.strip()] if names is not None else []
    tpl = read("templates.txt")
    if tpl is not None:
        templates = [line.strip() for line in tpl.decode().splitlines() if line.strip()]
    else:
        templates = list(default_templates) if default_templates is not None else load_templates("imagenet")
    labels = None
    if "label" in df.columns and df["label"].notna().all():
        labels = df["label"].to_numpy(dtype=np.int64)
        if classnames and (labels.min() < 0 or labels.max() >= len(classnames)):
            raise ValueError(
                f"{manifest}: labels must lie in [0, {len(classnames)}) (classnames.txt has {len(classnames)} lines)"
            )
    captions = None
    if "captions" in df.columns:
        try:
            captions = [json.loads(c) if isinstance(c, str) else [] for c in df["captions"]]
        except json.JSONDecodeError as e:
            raise ValueError(f"{manifest}: 'captions' must hold a JSON list of strings per row ({e})") from e
        if not any(captions):
            captions = None
    refs = df["image"].tolist()
    return EvalDataset(
        name=meta.get("name", Path(root).name),
        root=root,
        images=[_resolve(root, p) for p in refs],
        labels=labels,
        captions=captions,
        classnames=classnames,
        templates=templates,
        split=df["split"].astype(str).to_numpy() if "split" in df.columns else None,
        keys=df["key"].astype(str).tolist() if "key" in df.columns else None,
        shift_of=meta.get("shift_of"),
        task=meta.get("task", "classification" if labels is not None else "retrieval"),
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        fingerprint=hashlib.sha256(raw).hexdigest(),
        refs=refs,
        columns=pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False).to_dict("list"),  # as written
    )


def eval_dirs(eval_root: str | Path) -> list[str]:
    """Every `<eval_root>/<name>` directory holding a manifest.csv (local path or any fsspec URL), sorted by name."""
    root = str(eval_root).rstrip("/") if is_url(str(eval_root)) else str(Path(eval_root))
    fs, path = fsspec.core.url_to_fs(root)
    if not fs.isdir(path):
        raise FileNotFoundError(f"{eval_root}: eval root not found (expected data/raw/eval/<name>/manifest.csv)")
    names = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))
    return [_join(root, n) for n in names if fs.exists(posixpath.join(path, n, "manifest.csv"))]


def discover_eval_datasets(eval_root: str | Path, include: tuple[str, ...] = ()) -> list[EvalDataset]:
    """Every `<eval_root>/<name>/manifest.csv` directory (or only those named in `include`), sorted by name."""
    found = [load_eval_dataset(d) for d in eval_dirs(eval_root)]
    if include:
        missing = sorted(set(include) - {d.name for d in found})
        if missing:
            raise ValueError(f"{eval_root}: datasets {missing} not found; present: {[d.name for d in found]}")
        found = [d for d in found if d.name in include]
    return found


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (first, rest): `fraction` of each class (at least one where a class has two or more) vs the rest.

    Deterministic in (labels, fraction, seed); both index arrays are sorted.
    """
    rng = np.random.default_rng(seed)
    first = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n = round(fraction * len(idx))
        n = min(max(n, 1), len(idx) - 1) if len(idx) > 1 else 0
        first.append(idx[:n])
    first_idx = np.sort(np.concatenate(first)) if first else np.array([], dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(labels)), first_idx)
    return first_idx, rest


def probe_splits(ds: EvalDataset, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices of a classification set: its `split` column if present, else a stratified carve."""
    assert ds.labels is not None
    if ds.split is not None:
        train = np.flatnonzero(np.isin(ds.split, ["train", "val"]))
        test = np.flatnonzero(~np.isin(ds.split, ["train", "val"]))
        if len(train) and len(test):
            return train, test
    return stratified_split(ds.labels, train_fraction, seed)
