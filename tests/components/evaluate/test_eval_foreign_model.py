"""`evaluate --model` takes a foreign checkpoint (here: a bare state dict) with --model-config and --tokenizer."""

import json
from pathlib import Path

import torch

from components.evaluate.suite import load_model_dir
from flows.cli import main


def test_evaluate_a_checkpoint_file(tmp_path, tiny_model, model_dir, eval_root, capsys) -> None:
    model, _ = tiny_model
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "ckpt.pt")
    params = tmp_path / "params.yaml"
    params.write_text(Path("params.yaml").read_text())
    argv = ["--params", str(params), "--set", "evaluate.tasks=[zeroshot_classification]", "--set", "evaluate.progress=false"]

    def run(name: str, *model_args: str) -> dict:
        out = tmp_path / name
        assert main([*argv, "evaluate", *model_args, "--eval-root", str(eval_root), "--out", str(out)]) == 0
        return json.loads((out / "metrics.json").read_text())

    from_dir = run("dir", "--model", str(model_dir))
    tok = str(model_dir / "tokenizer.json")
    from_file = run("file", "--model", str(tmp_path / "ckpt.pt"), "--model-config", "tiny", "--tokenizer", tok)
    assert from_file == from_dir  # same weights, same tokenizer: same numbers
    assert "weights do not match" not in capsys.readouterr().err


def test_load_model_dir_keeps_identity_and_carries_preprocess(model_dir) -> None:
    from components.evaluate.cache import file_sha256

    model, tokenizer, sha = load_model_dir(model_dir)
    assert sha == file_sha256(model_dir / "model.safetensors")  # existing caches stay valid
    assert model.preprocess.size == model.cfg.vision_cfg.image_size and tokenizer.vocab_size <= 1024
