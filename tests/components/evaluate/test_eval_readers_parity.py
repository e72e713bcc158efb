"""Parity of the dataset readers with CLIP_benchmark: its own wds loader and metrics on the same files, same tiny model.

Same wrapping as test_eval_parity.py: open_clip's implementation of the tiny architecture holding our
random weights, and clip-benchmark 1.6's `accuracy` patched for numpy >= 2.4 ([0] before float()).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from components.evaluate.cache import EmbeddingCache, cached_image_features
from components.evaluate.readers import load_dataset_spec
from components.evaluate.zeroshot import average_precision_per_class, build_classifier, evaluate_zeroshot

open_clip = pytest.importorskip("open_clip")
zsc = pytest.importorskip("clip_benchmark.metrics.zeroshot_classification")
builder = pytest.importorskip("clip_benchmark.datasets.builder")
pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("clip_benchmark_numpy24")]


def test_wds_zeroshot_matches_clip_benchmark_on_the_same_files(formats, tmp_path, tiny_model) -> None:
    import clip_core

    model, tokenizer = tiny_model
    wds_dir = formats.write_all(tmp_path, n_classes=6, per_class=2)["wds"]  # 6 classes: CLIP_benchmark's acc5 is defined
    open_clip.add_model_config(str(Path(clip_core.__file__).parent / "configs" / "tiny.json"))
    their_model, _, preprocess = open_clip.create_model_and_transforms("tiny", pretrained=None)
    their_model.load_state_dict(model.state_dict(), strict=True)
    their_ds = builder.build_dataset("wds/colors", root=str(wds_dir), transform=preprocess, split="test", download=False)
    loader = DataLoader(their_ds, batch_size=5)
    theirs = zsc.evaluate(their_model.eval(), loader, tokenizer, their_ds.classes, their_ds.templates, "cpu", amp=False)

    ds = load_dataset_spec(str(wds_dir), with_train=False)
    assert ds.classnames == their_ds.classes and ds.templates == their_ds.templates
    feats = cached_image_features(EmbeddingCache(tmp_path / "cache"), model, "0" * 64, ds.name, ds.image_source(), batch_size=5)
    rows = ds.eval_rows()
    ours = evaluate_zeroshot(feats[rows], ds.labels[rows], build_classifier(model, tokenizer, ds.classnames, ds.templates))
    assert len(rows) == 12 and ours.metrics == theirs


def test_average_precision_matches_clip_benchmark() -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(50, 7, generator=g)
    targets = (torch.rand(50, 7, generator=g) > 0.7).long()
    targets[:, 3] = 0  # a class with no positives: both give it AP 0
    assert torch.equal(average_precision_per_class(scores, targets), zsc.average_precision_per_class(scores, targets))


def test_shipped_torchvision_prompts_and_classnames_are_clip_benchmarks() -> None:
    import clip_benchmark

    from components.evaluate.dataset import TEMPLATES_DIR, load_templates
    from components.evaluate.readers.tvdatasets import CLASSNAMES_DIR, SETS

    ref_dir = Path(clip_benchmark.__file__).parent / "datasets"
    templates = json.loads((ref_dir / "en_zeroshot_classification_templates.json").read_text())
    classnames = json.loads((ref_dir / "en_classnames.json").read_text())
    for name, s in SETS.items():
        key = "imagenet1k" if s.templates == "imagenet" else s.templates
        assert load_templates(TEMPLATES_DIR / f"{s.templates}.txt") == templates[key], name
        if s.classnames:
            assert (CLASSNAMES_DIR / f"{s.classnames}.txt").read_text().splitlines() == classnames[s.classnames], name
