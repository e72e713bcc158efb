"""End to end on a random tiny model: files written, image features reused from the cache, recode and true_label."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from components.bias.config import BiasConfig
from components.bias.probe import run_bias_probe

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def build_toy(root, model_dir, data_dir):
    """A random tiny model dir, a 24-image dataset with group_tone/group_age columns, and a probe file under root."""
    from clip_core import Tokenizer, create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("tiny").eval()
    tok = Tokenizer.train(
        [f"a photo of a {c} square" for c in COLOURS] * 5 + ["a blob", "a red thing"] * 5, vocab_size=300, context_length=32
    )
    save_checkpoint(model, model_dir / "model")
    tok.save(model_dir / "tokenizer.json")
    d = data_dir
    (d / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["image,group_tone,group_age"]
    for cname, rgb in COLOURS.items():
        for j in range(8):
            arr = np.clip(np.array(rgb)[None, None] + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(d / "images" / f"{cname}{j}.png")
            lines.append(f"images/{cname}{j}.png,{cname.upper()},{['0-2', '3-9', '30-39', '40-49'][j % 4]}")
    (d / "manifest.csv").write_text("\n".join(lines) + "\n")
    (d / "dataset.json").write_text(json.dumps({"name": "toybias", "task": "classification"}))
    probe = root / "probe.yaml"
    probe.write_text(
        "name: toy\nclasses: [red, green, blue]\nflagged: {odd: [blob]}\ntemplates: ['a photo of a {c} square']\n"
        "variants: [{name: + thing, add: [red thing]}]\nattributes: [tone, age]\n"
        "recode: {age: {'0-2': young, '3-9': young}}\ntrue_label: '{group_tone}'\n"
    )
    return probe


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bias")
    return root, build_toy(root, root / "model", root / "data")


def test_run_writes_report_and_reuses_cache(setup):
    root, probe = setup
    cfg = BiasConfig(probe=str(probe), bootstrap=50, min_group_size=2, device="cpu", linear_probe=True)
    r1 = run_bias_probe(root / "model", root / "data", root / "out", cfg, cache_dir=root / "cache")
    doc = json.loads((root / "out" / "bias.json").read_text())
    assert doc["image_features_from_cache"] is False
    assert sorted(doc["groupings"]["age"]["groups"]) == ["30-39", "40-49", "young"]
    assert doc["groupings"]["all"]["groups"]["all"]["n"] == 24
    assert "base/accuracy" in doc["quantities"] and "LR/accuracy" in doc["quantities"]  # true labels from group_tone
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert summary["n_images"] == 24 and summary["gate_passed"] is True
    assert 0.0 <= summary["base/flagged:any"] <= 1.0
    assert (root / "out" / "bias.html").exists() and list((root / "out" / "plots").glob("*.png"))
    assert r1.findings
    run_bias_probe(root / "model", root / "data", root / "out2", cfg, cache_dir=root / "cache")
    assert json.loads((root / "out2" / "bias.json").read_text())["image_features_from_cache"] is True
    assert (root / "out2" / "summary.json").read_text() == (root / "out" / "summary.json").read_text()


def test_missing_group_column_is_named(setup):
    root, probe = setup
    bad = root / "bad.yaml"
    bad.write_text(probe.read_text().replace("[tone, age]", "[tone, race]"))
    with pytest.raises(ValueError, match="group_race"):
        run_bias_probe(root / "model", root / "data", root / "out3", BiasConfig(probe=str(bad), device="cpu"), root / "cache")
