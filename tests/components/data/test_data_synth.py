import csv
import hashlib
import io
import json
import tarfile
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from components.data.config import COLOURS, SHAPES, SynthConfig
from components.data.synth import build_synth

SMALL = SynthConfig(n_train=300, samples_per_shard=100, n_eval_per_class=4, n_compositional_per_pair=2,
                    n_retrieval=12, n_planted_duplicates=8, num_workers=1)  # fmt: skip


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "raw"
    build_synth(str(out), SMALL)
    return out


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _train_json(raw: Path) -> list[dict]:
    out = []
    for shard in sorted((raw / "train").glob("*.tar")):
        with tarfile.open(shard) as tar:
            out += [json.load(tar.extractfile(m)) for m in tar.getmembers() if m.name.endswith(".json")]
    return out


def test_same_seed_same_bytes_other_seed_differs(raw, tmp_path) -> None:
    again = tmp_path / "again"
    build_synth(str(again), replace(SMALL, num_workers=2))  # worker count must not matter
    assert _digest(raw) == _digest(again)
    other = tmp_path / "other"
    build_synth(str(other), replace(SMALL, seed=1))
    assert (raw / "train/shard-000000.tar").read_bytes() != (other / "train/shard-000000.tar").read_bytes()


def test_train_shards_are_img2dataset_style(raw) -> None:
    shards = sorted((raw / "train").glob("*.tar"))
    assert [s.name for s in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
        img = Image.open(io.BytesIO(tar.extractfile("000000000.png").read()))
        text = tar.extractfile("000000000.txt").read().decode()
    assert names[:3] == ["000000000.png", "000000000.txt", "000000000.json"] and len(names) == 300
    assert img.size == (64, 64) and img.mode == "RGB" and text
    stats = json.loads((raw / "train/shard-000000_stats.json").read_text())
    assert stats["successes"] == stats["count"] == 100
    table = pd.read_parquet(raw / "train/shard-000000.parquet")
    assert list(table.key[:2]) == ["000000000", "000000001"] and (table.status == "success").all()


def test_heldout_pairs_never_in_train(raw) -> None:
    rows = _train_json(raw)
    assert len(rows) == 300
    pairs = {f"{r['colour']} {r['shape']}" for r in rows}
    assert not pairs & set(SMALL.heldout_pairs)
    assert {r["shape"] for r in rows} == set(SHAPES) and {r["colour"] for r in rows} == set(COLOURS)
    for r in rows:  # captions describe the sample
        assert r["colour"] in r["caption"]


def test_eval_sets_follow_the_directory_format(raw) -> None:
    for name in ("shape", "colour", "shape_compositional", "shape_sketch", "retrieval", "bias_probe"):
        d = raw / "eval" / name
        info = json.loads((d / "dataset.json").read_text())
        m = pd.read_csv(d / "manifest.csv")
        assert info["name"] == name and info["n"] == len(m)
        assert all((d / p).exists() for p in m.image)
        if info["task"] == "classification":
            classes = (d / "classnames.txt").read_text().splitlines()
            templates = (d / "templates.txt").read_text().splitlines()
            assert m.label.between(0, len(classes) - 1).all() and all("{c}" in t for t in templates)
    shape = pd.read_csv(raw / "eval/shape/manifest.csv")
    assert shape.label.value_counts().min() >= SMALL.n_eval_per_class
    assert json.loads((raw / "eval/shape_sketch/dataset.json").read_text())["shift_of"] == "shape"
    assert set(pd.read_csv(raw / "eval/shape_sketch/manifest.csv").group_style) == {"outline", "sketch", "noise"}
    bias = pd.read_csv(raw / "eval/bias_probe/manifest.csv")
    assert set(bias.group_background) == {"plain", "striped", "dotted", "gradient"} and "group_size" in bias
    comp = pd.read_csv(raw / "eval/shape_compositional/manifest.csv")
    classes = (raw / "eval/shape_compositional/classnames.txt").read_text().splitlines()
    held = {classes[i] for i in comp[comp.group_combo == "heldout"].label}
    assert held == set(SMALL.heldout_pairs) and not {classes[i] for i in comp[comp.group_combo == "seen"].label} & held
    retrieval = pd.read_csv(raw / "eval/retrieval/manifest.csv")
    assert retrieval.captions.map(lambda c: 2 <= len(json.loads(c)) <= 5).all()


def test_planted_duplicates_point_at_real_files(raw) -> None:
    rows = list(csv.DictReader((raw / "planted_duplicates.csv").open()))
    assert len(rows) == SMALL.n_planted_duplicates
    assert {r["transform"] for r in rows} == {"resize", "jpeg", "crop", "colour_jitter"}
    train_keys = {r["key"] for r in _train_json(raw)}
    for r in rows:
        assert (raw / "eval" / r["eval_dataset"] / r["eval_image"]).exists() and r["train_key"] in train_keys
        manifest = pd.read_csv(raw / "eval" / r["eval_dataset"] / "manifest.csv")
        assert r["eval_image"] in set(manifest.image)


def test_shipped_templates() -> None:
    lines = resources.files("components.data").joinpath("imagenet_templates.txt").read_text().splitlines()
    assert len(lines) == len(set(lines)) == 80 and all("{c}" in t for t in lines)
    assert "a bad photo of a {c}." in lines and "itap of a {c}." in lines


def test_config_rejects_bad_pairs() -> None:
    with pytest.raises(ValueError, match="colour shape"):
        SynthConfig(heldout_pairs=("circle blue",))
