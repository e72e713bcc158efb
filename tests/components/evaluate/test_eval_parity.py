"""Parity with CLIP_benchmark: same random tiny model (ours, and open_clip's loaded with our state dict), same images.

clip-benchmark 1.6's `accuracy` calls float() on a 1-element array, which numpy >= 2.4 refuses;
the tests swap in a copy that differs only by indexing that element ([0]).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from components.evaluate.cache import EmbeddingCache, cached_image_features, encode_texts, file_sha256
from components.evaluate.dataset import load_eval_dataset, load_templates
from components.evaluate.retrieval import flatten_captions, retrieval_metrics
from components.evaluate.zeroshot import build_classifier, classification_metrics, evaluate_zeroshot, zeroshot_logits

open_clip = pytest.importorskip("open_clip")
zsc = pytest.importorskip("clip_benchmark.metrics.zeroshot_classification")
zsr = pytest.importorskip("clip_benchmark.metrics.zeroshot_retrieval")
pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("clip_benchmark_numpy24")]


class _Images(Dataset):
    def __init__(self, ds, transform, captions: bool = False):
        self.ds, self.transform, self.captions = ds, transform, captions
        self.classes = ds.classnames

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        from PIL import Image

        img = self.transform(Image.open(self.ds.images[i]))
        return (img, self.ds.captions[i]) if self.captions else (img, int(self.ds.labels[i]))


@pytest.fixture()
def theirs(tiny_model):
    """open_clip's implementation of the tiny architecture with our random weights, and its eval transform."""
    from pathlib import Path

    import clip_core

    open_clip.add_model_config(str(Path(clip_core.__file__).parent / "configs" / "tiny.json"))
    model, _, preprocess = open_clip.create_model_and_transforms("tiny", pretrained=None)
    model.load_state_dict(tiny_model[0].state_dict(), strict=True)
    return model.eval(), preprocess


def test_zeroshot_matches_clip_benchmark(tmp_path, tiny_model, theirs, make_classification_dir, model_factory) -> None:
    model, tokenizer = tiny_model
    ds = load_eval_dataset(make_classification_dir(tmp_path, "c", per_class=5))
    their_model, preprocess = theirs
    loader = DataLoader(_Images(ds, preprocess), batch_size=8)
    their_metrics = zsc.evaluate(their_model, loader, tokenizer, ds.classnames, ds.templates, "cpu", amp=False)
    their_clf = zsc.zero_shot_classifier(their_model, tokenizer, ds.classnames, ds.templates, "cpu", amp=False)
    their_logits, _ = zsc.run_classification(their_model, their_clf, loader, "cpu", amp=False)

    sha = file_sha256(model_factory[1](model, tokenizer, tmp_path / "m") / "model.safetensors")
    feats = cached_image_features(EmbeddingCache(tmp_path / "cache"), model, sha, ds.name, ds.images, batch_size=8)
    clf = build_classifier(model, tokenizer, ds.classnames, ds.templates)
    ours = evaluate_zeroshot(feats, ds.labels, clf)

    assert torch.allclose(clf, their_clf, atol=1e-5)
    assert torch.allclose(ours.logits, their_logits, atol=1e-3)  # logits are 100 * cosine
    assert ours.metrics == their_metrics  # exact, 6 classes so top-5 is defined for both


def test_retrieval_matches_clip_benchmark(tmp_path, tiny_model, theirs, make_classification_dir) -> None:
    model, tokenizer = tiny_model
    ds = load_eval_dataset(make_classification_dir(tmp_path, "r", per_class=2, captions=True))
    their_model, preprocess = theirs
    loader = DataLoader(
        _Images(ds, preprocess, captions=True),
        batch_size=5,
        collate_fn=lambda b: (torch.stack([x for x, _ in b]), [c for _, c in b]),
    )
    their = zsr.evaluate(their_model, loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10])

    feats = cached_image_features(EmbeddingCache(tmp_path / "cache"), model, "x" * 64, ds.name, ds.images, batch_size=5)
    texts, owner = flatten_captions(ds.captions)
    ours = retrieval_metrics(feats, encode_texts(model, tokenizer, texts), owner, (1, 5, 10))
    assert ours == their


def test_metric_functions_match_on_random_scores() -> None:
    from sklearn.metrics import balanced_accuracy_score

    g = torch.Generator().manual_seed(0)
    for n_classes in (5, 10, 37):
        logits = torch.randn(200, n_classes, generator=g)
        labels = torch.randint(0, n_classes, (200,), generator=g)
        acc1, acc5 = zsc.accuracy(logits, labels, (1, 5))  # the numpy-2.4-patched copy (conftest)
        ref = {"acc1": acc1, "acc5": acc5, "mean_per_class_recall": balanced_accuracy_score(labels, logits.argmax(1))}
        assert classification_metrics(logits, labels.numpy()) == ref
    # retrieval: 12 images with 1-3 captions each, random features
    owner = np.repeat(np.arange(12), [1, 2, 3] * 4)
    img = torch.nn.functional.normalize(torch.randn(12, 16, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(len(owner), 16, generator=g), dim=-1)
    scores = txt @ img.T
    pos = torch.zeros_like(scores, dtype=torch.bool)
    pos[torch.arange(len(owner)), torch.as_tensor(owner)] = True
    ours = retrieval_metrics(img, txt, owner, (1, 5, 10))
    for k in (1, 5, 10):
        assert ours[f"image_retrieval_recall@{k}"] == (zsr.recall_at_k(scores, pos, k) > 0).float().mean().item()
        assert ours[f"text_retrieval_recall@{k}"] == (zsr.recall_at_k(scores.T, pos.T, k) > 0).float().mean().item()
    assert zeroshot_logits(img, torch.eye(16)[:, :3]).shape == (12, 3)


def test_shipped_imagenet_templates_are_clips_80() -> None:
    import json
    from pathlib import Path

    import clip_benchmark

    ref = json.loads(
        (Path(clip_benchmark.__file__).parent / "datasets" / "en_zeroshot_classification_templates.json").read_text()
    )
    assert load_templates("imagenet") == ref["imagenet1k"]
    assert len(ref["imagenet1k"]) == 80
