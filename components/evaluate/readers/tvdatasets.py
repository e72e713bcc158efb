"""torchvision datasets already on disk (`torchvision:CIFAR10:/data/cifar`), read with download=False.

Why it exists: many people have CIFAR, MNIST, Food-101, ... where torchvision (or CLIP_benchmark,
which uses the same classes) downloaded them; this scores those files with CLIP_benchmark's class names
and CLIP's prompts without a conversion step. Nothing is ever downloaded. Class names follow
CLIP_benchmark's `datasets/builder.py`: its cleaned lists (shipped here under `classnames/`) where it
has one, `_` -> space for Food-101, torchvision's own names otherwise; a `ROOT/classnames.txt` overrides.
Prompts: CLIP's per-dataset templates (shipped under `templates/`), CLIP_benchmark's ImageNet fallback.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..dataset import TEMPLATES_DIR, EvalDataset, load_templates
from ..images import tree_fingerprint

CLASSNAMES_DIR = Path(__file__).resolve().parent.parent / "classnames"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TorchvisionSet:
    """How to build one torchvision dataset's splits and name its classes."""

    files: str  # what torchvision expects under ROOT (for the not-on-disk error)
    train: dict[str, Any] | None  # constructor kwargs of the probe's train split; None: no such split
    test: dict[str, Any] = field(default_factory=dict)
    templates: str = "imagenet"  # a file under templates/
    classnames: str | None = None  # a file under classnames/ (CLIP_benchmark's list); None: torchvision's names
    underscores: bool = False  # replace `_` by spaces in torchvision's names (CLIP_benchmark does for Food-101)
    extra: dict[str, Any] = field(default_factory=dict)  # kwargs of every split


def _tt(train: bool) -> dict[str, Any]:
    return {"train": train}


def _split(name: str) -> dict[str, Any]:
    return {"split": name}


SETS: dict[str, TorchvisionSet] = {
    "CIFAR10": TorchvisionSet(
        "cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}", _tt(True), _tt(False), "cifar10"
    ),
    "CIFAR100": TorchvisionSet("cifar-100-python/{train, test, meta}", _tt(True), _tt(False), "cifar100"),
    "MNIST": TorchvisionSet("MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte", _tt(True), _tt(False), "mnist", "mnist"),
    "FashionMNIST": TorchvisionSet("FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte", _tt(True), _tt(False)),
    "STL10": TorchvisionSet(
        "stl10_binary/{train_X,train_y,test_X,test_y}.bin, class_names.txt", _split("train"), _split("test"), "stl10"
    ),
    "SVHN": TorchvisionSet("{train,test}_32x32.mat", _split("train"), _split("test"), "svhn", "svhn"),
    "Flowers102": TorchvisionSet(
        "flowers-102/{jpg/, imagelabels.mat, setid.mat}", _split("train"), _split("test"), "flowers", "flowers"
    ),
    "Food101": TorchvisionSet(
        "food-101/{images/, meta/train.json, meta/test.json}", _split("train"), _split("test"), "food101", underscores=True
    ),
    "DTD": TorchvisionSet("dtd/dtd/{images/, labels/}", _split("train"), _split("test"), "dtd"),
    "EuroSAT": TorchvisionSet("eurosat/2750/<class>/*.jpg", None, {}, "eurosat", "eurosat"),
    "GTSRB": TorchvisionSet(
        "gtsrb/GTSRB/{Training/, Final_Test/, GT-final_test.csv}", _split("train"), _split("test"), "gtsrb", "gtsrb"
    ),
    "Country211": TorchvisionSet(
        "country211/{train,test}/<country>/*.jpg", _split("train"), _split("test"), "country211", "country211"
    ),
    "OxfordIIITPet": TorchvisionSet(
        "oxford-iiit-pet/{images/, annotations/trainval.txt, annotations/test.txt}",
        _split("trainval"),
        _split("test"),
        "pets",
        extra={"target_types": "category"},
    ),
    "ImageNet": TorchvisionSet(
        "ILSVRC2012_devkit_t12.tar.gz (or meta.bin) and val/ (ILSVRC2012_img_val.tar), optional train/",
        _split("train"),
        _split("val"),
        "imagenet",
        "imagenet1k",
    ),
}


class TorchvisionImages:
    """Samples of torchvision dataset objects (one per split), by row."""

    def __init__(self, parts: list[Any], fingerprint: str):
        self.parts, self.fingerprint = parts, fingerprint
        self.offsets = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def load(self, i: int) -> Any:
        j = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.parts[j][i - int(self.offsets[j])][0].convert("RGB")


def _targets(ds: Any) -> np.ndarray:
    """Every label without decoding an image (each class keeps them under its own attribute)."""
    for attr in ("targets", "labels", "_labels"):
        if hasattr(ds, attr):
            return np.asarray(getattr(ds, attr), dtype=np.int64).reshape(-1)
    if hasattr(ds, "_samples"):
        return np.array([t for _, t in ds._samples], dtype=np.int64)
    return np.array([ds[i][1] for i in range(len(ds))], dtype=np.int64)


# what CIFAR's python batches hold: numpy arrays, lists, ints and bytes; any other global (os.system, a class
# whose __reduce__ runs code) is refused, so a crafted batch file cannot run code in the evaluation
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}  # fmt: skip


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(
                f"refused {module}.{name}: a CIFAR batch file holds only numpy arrays, lists and bytes; this one "
                "asks to build other objects (possibly code). Re-download it from the dataset's authors."
            )
        return super().find_class(module, name)


class _RestrictedPickle:
    """Stands in for the `pickle` module inside torchvision's CIFAR loader (it calls `pickle.load(f, encoding=...)`)."""

    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(f: Any, encoding: str = "ASCII", **_: Any) -> Any:
        return _ArraysOnly(f, encoding=encoding).load()


@contextlib.contextmanager
def _arrays_only_pickle() -> Iterator[None]:
    import torchvision.datasets.cifar as cifar

    original = cifar.pickle
    cifar.pickle = _RestrictedPickle
    try:
        yield
    finally:
        cifar.pickle = original


def _build(cls: Any, name: str, root: str, kwargs: dict[str, Any], spec: TorchvisionSet) -> Any:
    try:
        with _arrays_only_pickle():
            if name == "ImageNet":
                return cls(root=root, **kwargs)
            return cls(root=root, download=False, **spec.extra, **kwargs)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{root}: torchvision {name}: {e}") from None
    except (RuntimeError, FileNotFoundError) as e:
        raise FileNotFoundError(
            f"{root}: torchvision {name} ({', '.join(f'{k}={v}' for k, v in kwargs.items()) or 'all'}) is not on disk: "
            f"torchvision expects {root}/{spec.files}. Nothing is downloaded here: fetch it once (e.g. "
            f"torchvision.datasets.{name}(root, download=True)) and run again. ({e})"
        ) from None


def load_torchvision(tv_name: str, root: str | Path, name: str | None = None, with_train: bool = True) -> EvalDataset:
    """Read torchvision dataset `tv_name` from `root` (download=False); its train split, when on disk, feeds the probe."""
    import torchvision.datasets as tvd

    match = {k.lower(): k for k in SETS}.get(tv_name.lower())
    if match is None:
        raise ValueError(f"torchvision:{tv_name}: unknown dataset; supported: {sorted(SETS)}")
    spec, cls, root = SETS[match], getattr(tvd, match), str(root)
    parts = [("test", _build(cls, match, root, spec.test, spec))]
    if with_train and spec.train is not None:
        try:
            parts.insert(0, ("train", _build(cls, match, root, spec.train, spec)))
        except FileNotFoundError as e:  # common for ImageNet (val only); the probe then carves the test split
            log.warning("%s; the linear probe carves its train split from the test split instead", e)
    test_ds = parts[-1][1]
    override = Path(root) / "classnames.txt"
    if override.exists():
        classnames = [c.strip() for c in override.read_text().splitlines() if c.strip()]
    elif spec.classnames:
        classnames = [c.strip() for c in (CLASSNAMES_DIR / f"{spec.classnames}.txt").read_text().splitlines() if c.strip()]
    else:
        classnames = [c.replace("_", " ") if spec.underscores else c for c in test_ds.classes]
    labels = np.concatenate([_targets(d) for _, d in parts])
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= len(classnames):
        raise ValueError(f"{root}: torchvision {match} labels lie outside [0, {len(classnames)}) ({len(classnames)} class names)")
    split = np.concatenate([[s] * len(d) for s, d in parts]) if spec.train is not None else None
    split_names = [s for s, _ in parts]
    fingerprint = tree_fingerprint(root, "torchvision", match, *split_names)
    images = [f"torchvision:{match}:{s}[{i}]" for s, d in parts for i in range(len(d))]
    return EvalDataset(
        name=name or match.lower(),
        root=root,
        images=images,
        labels=labels,
        classnames=classnames,
        templates=load_templates(TEMPLATES_DIR / f"{spec.templates}.txt"),
        split=split,
        keys=images,
        source=TorchvisionImages([d for _, d in parts], fingerprint),
        eval_split="test" if split is not None else None,
        fingerprint=fingerprint,
        format="torchvision",
    )
