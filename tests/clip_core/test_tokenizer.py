import os

import pytest
import torch

from clip_core import Tokenizer

TEXTS = [
    "a photo of a cat.",
    "Hello, World!! it's 2026 &amp; café naïve — résumé",
    "  multiple   spaces\tand\nnewlines ",
    "don't STOP believing",
    "x" * 300,
    "日本語のテキスト 123 émoji 🙂",
    "the quick brown fox " * 20,
    "",
]


def test_parity_with_open_clip_vocabulary() -> None:
    open_clip = pytest.importorskip("open_clip")
    path = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    ours = Tokenizer.from_bpe_merges(path)
    assert (ours.vocab_size, ours.sot_token_id, ours.eot_token_id) == (49408, 49406, 49407)
    assert torch.equal(ours(TEXTS), open_clip.tokenize(TEXTS))
    assert ours.decode(ours("a photo of a cat")[0].tolist()) == "a photo of a cat"


def test_trained_bpe_keeps_eot_highest_and_truncates(tmp_path) -> None:
    captions = ["a small red circle in the top left", "blue square on a striped background"] * 50
    tok = Tokenizer.train(captions, vocab_size=700, context_length=8)
    assert tok.vocab_size <= 700
    assert tok.eot_token_id == tok.vocab_size - 1 and tok.sot_token_id == tok.vocab_size - 2
    ids = tok(["a small red circle in the top left corner of the picture"])
    assert ids.shape == (1, 8) and ids[0, 0] == tok.sot_token_id and ids[0, -1] == tok.eot_token_id
    short = tok("red circle")[0]
    assert short.argmax() == (short != 0).sum() - 1  # EOT is the last non-pad token and the argmax
    tok.save(tmp_path / "tok.json")
    again = Tokenizer.load(tmp_path / "tok.json")
    assert again.context_length == 8 and torch.equal(again(captions[:2]), tok(captions[:2]))
    assert tok.decode(tok("red circle")[0].tolist()) == "red circle"


def test_trained_bpe_is_deterministic_and_merges_frequent_words() -> None:
    from collections import Counter

    from clip_core.tokenizer import learn_merges

    # known answer: "ab" is the most frequent pair (7), then "ab"+"c</w>" (5), then "ab"+"d</w>" (2)
    assert learn_merges(Counter({"abc": 5, "abd": 2, "xy": 1}), 3) == [("a", "b"), ("ab", "c</w>"), ("ab", "d</w>")]
    captions = [f"a {s} {c} shape in the {p}" for s in ("small", "large") for c in ("red", "blue") for p in ("top", "left")]
    a = Tokenizer.train(captions * 3, vocab_size=600)
    b = Tokenizer.train(list(reversed(captions * 3)), vocab_size=600)
    assert a.backend.to_str() == b.backend.to_str()  # same counts, same tokenizer, whatever the order
    assert a("a small red shape")[0, 1:6].tolist() == [
        a.backend.token_to_id(w + "</w>") for w in ("a", "small", "red", "shape")
    ] + [a.eot_token_id]
