"""The torchvision reader on MNIST, FashionMNIST, SVHN and STL10 files written in each one's on-disk format.

CIFAR-10 runs through every reader in test_eval_readers.py; these check that the other formats' files,
as torchvision expects them, come out with the right labels, splits, class names and pixels.
"""

import struct
from pathlib import Path

import numpy as np
import pytest

from components.evaluate.readers import load_dataset_spec


def _pixels(ds, row: int) -> np.ndarray:
    return np.asarray(ds.image_source().load(row))


def _idx(path: Path, arr: np.ndarray) -> None:
    """The IDX format MNIST ships (big-endian magic 0x08 = uint8, then the dimensions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head = struct.pack(">I", 0x0800 | arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    path.write_bytes(head + arr.astype(np.uint8).tobytes())


@pytest.mark.parametrize(("tv", "n_classes"), [("MNIST", 10), ("FashionMNIST", 10)])
def test_mnist_style_idx_files(tmp_path: Path, tv: str, n_classes: int) -> None:
    rng = np.random.default_rng(0)
    raw = tmp_path / tv / "raw"
    x = {s: rng.integers(0, 255, (n, 28, 28)) for s, n in (("train", 12), ("t10k", 7))}
    y = {s: rng.integers(0, 10, len(x[s])) for s in x}
    for s in x:
        _idx(raw / f"{s}-images-idx3-ubyte", x[s])
        _idx(raw / f"{s}-labels-idx1-ubyte", y[s])
    ds = load_dataset_spec(f"torchvision:{tv}:{tmp_path}")
    assert len(ds) == 19 and list(ds.split).count("test") == 7 and ds.eval_split == "test"
    assert ds.labels.tolist() == y["train"].tolist() + y["t10k"].tolist()
    assert len(ds.classnames) == n_classes
    assert (_pixels(ds, 12)[..., 0] == x["t10k"][0]).all()  # first test row; grey -> RGB keeps the values


def test_svhn_mat_files(tmp_path: Path, monkeypatch) -> None:
    import scipy.io
    import torchvision.datasets.svhn as svhn

    monkeypatch.setattr(svhn, "check_integrity", lambda *a, **k: True)  # torchvision md5-checks the real files
    rng = np.random.default_rng(1)
    labels = {"train": np.array([10, 1, 2, 3, 10]), "test": np.array([4, 10, 9])}  # SVHN writes digit 0 as 10
    pixels = {}
    for split, y in labels.items():
        pixels[split] = rng.integers(0, 255, (32, 32, 3, len(y)), dtype=np.uint8)
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {"X": pixels[split], "y": y.reshape(-1, 1)})
    ds = load_dataset_spec(f"torchvision:SVHN:{tmp_path}")
    assert ds.labels.tolist() == [0, 1, 2, 3, 0, 4, 0, 9]
    assert ds.classnames[0] == "zero" and len(ds.classnames) == 10
    assert (_pixels(ds, 5) == pixels["test"][..., 0]).all()


def test_stl10_binary_files(tmp_path: Path, monkeypatch) -> None:
    import torchvision.datasets.stl10 as stl10

    monkeypatch.setattr(stl10, "check_integrity", lambda *a, **k: True)
    rng = np.random.default_rng(2)
    d = tmp_path / "stl10_binary"
    d.mkdir()
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (d / "class_names.txt").write_text("\n".join(names) + "\n")
    imgs = {}
    for split, y in (("train", [1, 2, 10]), ("test", [3, 4])):
        imgs[split] = rng.integers(0, 255, (len(y), 3, 96, 96), dtype=np.uint8)
        # column-major per image, as STL-10 stores them (torchvision transposes back)
        (d / f"{split}_X.bin").write_bytes(np.transpose(imgs[split], (0, 1, 3, 2)).tobytes())
        (d / f"{split}_y.bin").write_bytes(np.array(y, dtype=np.uint8).tobytes())  # 1-based
    ds = load_dataset_spec(f"torchvision:STL10:{tmp_path}")
    assert ds.labels.tolist() == [0, 1, 9, 2, 3] and ds.classnames[:3] == ["airplane", "bird", "car"]
    assert (_pixels(ds, 3) == np.transpose(imgs["test"][0], (1, 2, 0))).all()
