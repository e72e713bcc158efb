"""WiSE-FT (`models interpolate`): alpha 0 and 1 give the inputs exactly, 0.5 the mean; mismatches are named."""

from pathlib import Path

import pytest
import torch

import clip_core
from clip_core import Tokenizer, create_model, interpolate_models, load_model, save_checkpoint


def _model_dir(d: Path, seed: int, name: str = "tiny", context_length: int = 32) -> Path:
    torch.manual_seed(seed)
    d.mkdir(parents=True)
    save_checkpoint(create_model(name), d / "model")
    tok = Tokenizer.train(["a red circle", "a blue square"] * 4, vocab_size=300, context_length=context_length)
    tok.save(d / "tokenizer.json")
    return d


def _weights(d: Path) -> dict[str, torch.Tensor]:
    return load_model(d).model.state_dict()


def test_interpolation_known_answers_and_cli(tmp_path: Path) -> None:
    from flows.cli import main

    a, b = _model_dir(tmp_path / "a", 0), _model_dir(tmp_path / "b", 1)
    wa, wb = _weights(a), _weights(b)
    for alpha, expect in ((0.0, wa), (1.0, wb)):
        got = interpolate_models(a, b, alpha, tmp_path / f"out{alpha}").model.state_dict()
        assert all(torch.equal(got[k], expect[k]) for k in expect)  # bit-exact
    assert main(["models", "interpolate", str(a), str(b), "--alpha", "0.5", "--out", str(tmp_path / "mid")]) == 0
    mid = _weights(tmp_path / "mid")  # a model directory every stage reads
    assert all(torch.equal(mid[k], (wa[k] + wb[k]) / 2) for k in wa)
    assert not torch.equal(wa["visual.proj"], wb["visual.proj"])
    assert (tmp_path / "mid" / "provenance.json").read_text().count('"alpha": 0.5') == 1
    assert clip_core.Tokenizer.load(tmp_path / "mid" / "tokenizer.json").context_length == 32


def test_interpolation_mismatch_names_the_key(tmp_path: Path) -> None:
    a = _model_dir(tmp_path / "a", 0)
    with pytest.raises(ValueError, match=r"model\.vision_cfg\.image_size: 32 vs 64"):
        interpolate_models(a, _model_dir(tmp_path / "wide", 0, name="tiny-64"), 0.5, tmp_path / "x")
    with pytest.raises(ValueError, match=r"model\.tokenizer\.context_length: 32 vs 16"):
        interpolate_models(a, _model_dir(tmp_path / "short", 0, context_length=16), 0.5, tmp_path / "y")
    with pytest.raises(ValueError, match="alpha"):
        interpolate_models(a, a, 1.5, tmp_path / "z")
