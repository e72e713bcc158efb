"""Known answers of zero-shot and retrieval metrics: orthogonal embeddings, a hand-computed 3-class case."""

import numpy as np
import pytest
import torch

from components.evaluate.retrieval import flatten_captions, retrieval_metrics
from components.evaluate.zeroshot import build_classifier, classification_metrics, evaluate_zeroshot, topk_accuracy


def test_orthogonal_embeddings_score_100_percent() -> None:
    n_classes = 7
    labels = np.repeat(np.arange(n_classes), 3)
    feats = np.eye(n_classes, dtype=np.float32)[labels]  # (21, 7) one-hot
    res = evaluate_zeroshot(feats, labels, torch.eye(n_classes))
    assert res.metrics == {"acc1": 1.0, "acc5": 1.0, "mean_per_class_recall": 1.0}
    assert (res.confusion == np.diag([3] * n_classes)).all()
    m = retrieval_metrics(np.eye(5), np.eye(5), np.arange(5), ks=(1, 5, 10))
    assert all(v == 1.0 for v in m.values())


def test_hand_built_three_class_case() -> None:
    # rows: label 0 correct; label 1 ranked 2nd; label 2 correct; label 2 ranked 3rd; label 0 correct
    logits = torch.tensor([[3.0, 2, 1], [3, 2, 1], [1, 2, 3], [3, 2, 1], [3, 2, 1]])
    labels = np.array([0, 1, 2, 2, 0])
    m = classification_metrics(logits, labels)
    assert m["acc1"] == pytest.approx(3 / 5)
    assert m["acc5"] == 1.0  # top-5 clipped to 3 classes
    assert topk_accuracy(logits, torch.as_tensor(labels), (2,)) == [pytest.approx(4 / 5)]
    # per-class recall: class 0 2/2, class 1 0/1, class 2 1/2 -> mean 0.5
    assert m["mean_per_class_recall"] == pytest.approx(0.5)


def test_hand_built_retrieval_case() -> None:
    # image i = e_i, so score(text, image i) = text[i]; image 0 has two captions
    img = np.eye(3)
    txt = np.array([[0.5, 0.9, 0.1], [0.2, 0.1, 0.9], [0.1, 0.8, 0.3], [0.7, 0.2, 0.95]])
    owner = np.array([0, 0, 1, 2])
    m = retrieval_metrics(img, txt, owner, ks=(1, 2, 10))
    # text->image: only t2 and t3 rank their image first; all within top 2
    assert m["image_retrieval_recall@1"] == pytest.approx(2 / 4)
    assert m["image_retrieval_recall@2"] == 1.0
    # image->text: img0 tops t3 (not its own), img1 tops t0, img2 tops t3 (its own); all hit within top 2
    assert m["text_retrieval_recall@1"] == pytest.approx(1 / 3)
    assert m["text_retrieval_recall@2"] == 1.0
    assert m["text_retrieval_recall@10"] == 1.0  # k clipped to the gallery


def test_flatten_captions() -> None:
    texts, owner = flatten_captions([["a", "b"], [], ["c"]])
    assert texts == ["a", "b", "c"] and owner.tolist() == [0, 0, 2]


class _FixedText(torch.nn.Module):
    """encode_text returns a fixed vector per prompt, to check prompt ensembling by hand."""

    def __init__(self, table: dict[str, list[float]]):
        super().__init__()
        self.table = table
        self.prompts: list[str] = []
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.table[self.prompts[int(i)]] for i in tokens[:, 0]])


def test_prompt_ensemble_normalise_average_renormalise() -> None:
    table = {"a x": [3.0, 0.0], "b x": [0.0, 1.0], "a y": [1.0, 1.0], "b y": [-1.0, 1.0]}
    model = _FixedText(table)
    model.prompts = list(table)

    def tokenizer(texts):
        return torch.tensor([[model.prompts.index(t)] for t in texts])

    clf = build_classifier(model, tokenizer, ["x", "y"], ["a {c}", "b {c}"])
    # x: mean((1,0),(0,1)) = (.5,.5) -> (1,1)/sqrt2 ; y: mean((1,1)/s2, (-1,1)/s2) = (0, 1/s2) -> (0,1)
    s = 2**-0.5
    assert torch.allclose(clf, torch.tensor([[s, 0.0], [s, 1.0]]), atol=1e-6)
