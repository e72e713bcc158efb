"""The torchvision reader on every supported dataset but ImageNet, from files written in each one's on-disk format.

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


def _img(path: Path, rgb: tuple[int, int, int]) -> None:
    """A small lossless image under any name (PIL reads the content, not the extension)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        Image.new("RGB", (20, 16), rgb).save(f, format="PNG")


def _colour(i: int) -> tuple[int, int, int]:
    return (10 * i % 256, 255 - 10 * i % 256, 7 * i % 256)


def _check(ds, labels: list[int], n_test: int, first_test_colour: tuple[int, int, int]) -> None:
    assert ds.labels.tolist() == labels
    assert (ds.split == "test").sum() == n_test if ds.split is not None else len(ds) == n_test
    row = len(ds) - n_test
    assert tuple(_pixels(ds, row)[0, 0]) == first_test_colour


def test_cifar100_python_batches(tmp_path: Path, trust_cifar_files) -> None:
    import pickle

    rng = np.random.default_rng(3)
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    data = {s: rng.integers(0, 255, (n, 3072), dtype=np.uint8) for s, n in (("train", 5), ("test", 3))}
    fine = {"train": [0, 99, 5, 5, 1], "test": [42, 0, 7]}
    for s in data:
        (d / s).write_bytes(pickle.dumps({"data": data[s], "fine_labels": fine[s], "coarse_labels": [0] * len(fine[s])}))
    (d / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))
    ds = load_dataset_spec(f"torchvision:CIFAR100:{tmp_path}")
    assert ds.labels.tolist() == fine["train"] + fine["test"] and len(ds.classnames) == 100
    assert (_pixels(ds, 5) == data["test"][0].reshape(3, 32, 32).transpose(1, 2, 0)).all()


def test_eurosat_and_country211_folders(tmp_path: Path) -> None:
    eurosat = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
               "Residential", "River", "SeaLake"]  # fmt: skip
    for i, c in enumerate(eurosat):
        _img(tmp_path / "eurosat" / "2750" / c / f"{c}_1.jpg", _colour(i))
    ds = load_dataset_spec(f"torchvision:EuroSAT:{tmp_path}")
    assert ds.labels.tolist() == list(range(10)) and ds.split is None and len(ds.classnames) == 10
    assert ds.classnames[0].lower().startswith("annual crop")
    for split, codes in (("train", ["AD", "AE", "AF"]), ("test", ["AD", "AF"])):
        for i, c in enumerate(codes):
            _img(tmp_path / "country211" / split / c / f"{i}.jpg", _colour(i + (10 if split == "test" else 0)))
    ds = load_dataset_spec(f"torchvision:Country211:{tmp_path}")
    assert len(ds.classnames) == 211
    _check(ds, [0, 1, 2, 0, 1], 2, _colour(10))  # test folders AD, AF -> their own ImageFolder indices 0, 1


def test_dtd_food101_and_pets_split_files(tmp_path: Path) -> None:
    import json

    classes = ["banded", "zigzagged"]
    lines = {"train": ["banded/b1.jpg", "zigzagged/z1.jpg"], "val": [], "test": ["zigzagged/z2.jpg", "banded/b2.jpg"]}
    for k, (split, names) in enumerate(lines.items()):
        for j, rel in enumerate(names):
            _img(tmp_path / "dtd" / "dtd" / "images" / rel, _colour(10 * k + j))
        labels_dir = tmp_path / "dtd" / "dtd" / "labels"
        labels_dir.mkdir(parents=True, exist_ok=True)
        (labels_dir / f"{split}1.txt").write_text("".join(f"{x}\n" for x in names))
    ds = load_dataset_spec(f"torchvision:DTD:{tmp_path}")
    assert ds.classnames == classes
    _check(ds, [0, 1, 1, 0], 2, _colour(20))

    meta = {"train": {"apple_pie": ["apple_pie/1"], "baby_back_ribs": ["baby_back_ribs/2"]},
            "test": {"apple_pie": ["apple_pie/3"], "baby_back_ribs": ["baby_back_ribs/4"]}}  # fmt: skip
    for split, m in meta.items():
        for ids in m.values():
            for rel in ids:
                _img(tmp_path / "food-101" / "images" / f"{rel}.jpg", _colour(int(rel[-1])))
        (tmp_path / "food-101" / "meta").mkdir(parents=True, exist_ok=True)
        (tmp_path / "food-101" / "meta" / f"{split}.json").write_text(json.dumps(m))
    ds = load_dataset_spec(f"torchvision:Food101:{tmp_path}")
    assert ds.classnames == ["apple pie", "baby back ribs"]  # CLIP_benchmark's `_` -> space
    _check(ds, [0, 1, 0, 1], 2, _colour(3))

    pets = tmp_path / "oxford-iiit-pet"
    ann = {"trainval": ["Abyssinian_1 1 1 1", "american_bulldog_2 2 2 1"],
           "test": ["american_bulldog_3 2 2 1", "Abyssinian_4 1 1 1"]}  # fmt: skip
    for split, rows in ann.items():
        for row in rows:
            image_id = row.split()[0]
            _img(pets / "images" / f"{image_id}.jpg", _colour(int(image_id[-1])))
        (pets / "annotations").mkdir(parents=True, exist_ok=True)
        (pets / "annotations" / f"{split}.txt").write_text("\n".join(rows) + "\n")
    ds = load_dataset_spec(f"torchvision:OxfordIIITPet:{tmp_path}")
    assert ds.classnames == ["Abyssinian", "American Bulldog"]
    _check(ds, [0, 1, 1, 0], 2, _colour(3))


def test_gtsrb_and_flowers102(tmp_path: Path, monkeypatch) -> None:
    import scipy.io
    import torchvision.datasets.flowers102 as flowers102

    base = tmp_path / "gtsrb" / "GTSRB"
    for cls, n in ((0, 1), (2, 2)):
        for j in range(n):
            _img(base / "Training" / f"{cls:05d}" / f"{j:05d}_00000.ppm", _colour(cls + j))
    for name, cls in (("00000.ppm", 2), ("00001.ppm", 0)):
        _img(base / "Final_Test" / "Images" / name, _colour(30 + cls))
    (tmp_path / "gtsrb" / "GT-final_test.csv").write_text(
        "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n00000.ppm;20;16;0;0;19;15;2\n00001.ppm;20;16;0;0;19;15;0\n"
    )
    ds = load_dataset_spec(f"torchvision:GTSRB:{tmp_path}")
    assert len(ds.classnames) == 43
    _check(ds, [0, 1, 1, 2, 0], 2, _colour(32))  # train folders 00000, 00002 -> ImageFolder indices 0, 1

    monkeypatch.setattr(flowers102, "check_integrity", lambda *a, **k: True)
    fl = tmp_path / "flowers-102"
    for i in range(1, 7):
        _img(fl / "jpg" / f"image_{i:05d}.jpg", _colour(i))
    scipy.io.savemat(fl / "imagelabels.mat", {"labels": np.array([[1, 2, 102, 1, 5, 2]])})  # 1-based
    scipy.io.savemat(fl / "setid.mat", {"trnid": np.array([[1, 2]]), "valid": np.array([[3]]), "tstid": np.array([[5, 6]])})
    ds = load_dataset_spec(f"torchvision:Flowers102:{tmp_path}")
    assert len(ds.classnames) == 102
    _check(ds, [0, 1, 4, 1], 2, _colour(5))
