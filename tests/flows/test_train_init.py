"""train.init_from naming a model: a model directory is used in place, an open_clip hub directory is imported with its
tokenizer, and weights of another architecture fail before any training, naming the keys."""

from __future__ import annotations

from pathlib import Path

import pytest

import clip_core
from flows.params import load_params
from flows.train_stage import init_weights, load_model_tokenizer


def _model_dir(tmp_path: Path, model: str) -> tuple[Path, clip_core.Tokenizer]:
    from clip_core.model_dir import save_model_dir
    from clip_core.transforms import PreprocessConfig

    tok = clip_core.Tokenizer.train(["a red square", "a blue circle"] * 20, vocab_size=300, context_length=32)
    net = clip_core.create_model(model)
    loaded = clip_core.LoadedModel(net, tok, PreprocessConfig.from_dict({}, size=net.image_size), "", "model-dir",
                                   tmp_path, tmp_path)  # fmt: skip
    return save_model_dir(loaded, tmp_path / f"{model}-dir"), tok


def _params(tmp_path: Path, *sets: str):
    return load_params("params.yaml", [f"pipeline.out_root={tmp_path / 'out'}", *sets])


def test_model_directory_and_imported_checkpoint_start_the_run(tmp_path: Path) -> None:
    src, tok = _model_dir(tmp_path, "tiny")
    init = init_weights(_params(tmp_path, f"train.init_from={src}"), str(tmp_path / "train"))
    assert init["model"] == str(src) and init["label"].startswith(f"model {src} (sha256 ")
    assert load_model_tokenizer(init["model"]).encode("a red square") == tok.encode("a red square")

    hub = tmp_path / "hub"  # open_clip's layout: imported once beside the run's checkpoints, tokenizer included
    clip_core.export_open_clip(src, hub)
    init = init_weights(_params(tmp_path, f"train.init_from={hub}"), str(tmp_path / "train"))
    assert init["model"] == str(tmp_path / "train" / "init_model")
    assert (tmp_path / "train" / "init_model" / "provenance.json").exists()
    assert load_model_tokenizer(init["model"]).encode("a blue circle") == tok.encode("a blue circle")


def test_weights_of_another_architecture_fail_before_training(tmp_path: Path) -> None:
    src, _ = _model_dir(tmp_path, "tiny-64")  # 16-pixel patches: only the patch embedding's shape differs
    expected = r"fit train.model 'tiny' \(1 keys\): visual.conv1.weight: \(128, 3, 16, 16\) in the weights, \(128, 3, 8, 8\)"
    with pytest.raises(ValueError, match=expected):
        init_weights(_params(tmp_path, f"train.init_from={src}"), str(tmp_path / "train"))
    with pytest.raises(FileNotFoundError, match="no model directory there"):
        init_weights(_params(tmp_path, "train.init_from=memory://nowhere"), str(tmp_path / "train"))
