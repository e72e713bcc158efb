import json
import subprocess
import sys
import time

import pytest
import torch

from flows.cli import main


def test_help_is_fast_and_light() -> None:
    t0 = time.perf_counter()
    code = (
        "import sys, flows.cli as c; c.build_parser(); "
        "print(sorted(m for m in ('torch', 'ray', 'prefect', 'deepspeed') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # heavy frameworks are imported only by the subcommand that needs them
    assert time.perf_counter() - t0 < 30  # generous: the real bound is ~1 s, this only catches a hang


def test_params_errors_exit_2(capsys) -> None:
    assert main(["--set", "pipeline.bogus=1", "params"]) == 2
    assert "unknown key(s) ['bogus']" in capsys.readouterr().err


def test_models_lists_shipped_configs(capsys) -> None:
    assert main(["models"]) == 0
    assert "ViT-B-32" in capsys.readouterr().out


def test_models_import_export_round_trip(tmp_path, capsys) -> None:
    from clip_core import Tokenizer, create_model, load_model

    torch.manual_seed(0)
    model = create_model("tiny", quick_gelu=True).eval()
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "ckpt.pt")
    Tokenizer.train(["a red circle", "a blue square"] * 5, vocab_size=300, context_length=32).save(tmp_path / "tok.json")
    (tmp_path / "arch.json").write_text(json.dumps(model.cfg.to_dict()))
    src, out, hub = str(tmp_path / "ckpt.pt"), str(tmp_path / "dir"), str(tmp_path / "hub")
    assert (
        main(
            [
                "models",
                "import",
                src,
                "--config",
                str(tmp_path / "arch.json"),
                "--tokenizer",
                str(tmp_path / "tok.json"),
                "--out",
                out,
            ]
        )
        == 0
    )
    assert "torch-state-dict" in capsys.readouterr().out
    prov = json.loads((tmp_path / "dir" / "provenance.json").read_text())
    assert prov["source"] == src and prov["format"] == "torch-state-dict" and len(prov["source_sha256"]) == 64
    assert {p.name for p in (tmp_path / "dir").iterdir()} >= {
        "model.safetensors",
        "model.json",
        "tokenizer.json",
        "preprocess.json",
    }
    assert main(["models", "export", out, "--format", "open_clip", "--out", hub]) == 0
    assert "not CLIP's BPE" in capsys.readouterr().out  # our trained tokenizer: open_clip's default would differ
    back = load_model(hub).model
    assert back.cfg == model.cfg and all(torch.equal(back.state_dict()[k], v) for k, v in model.state_dict().items())


def test_models_import_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt: not found"):
        main(["models", "import", str(tmp_path / "nothing.pt"), "--out", str(tmp_path / "d")])


def test_run_rejects_an_unknown_stage_before_starting(capsys, monkeypatch) -> None:
    import flows.commands.pipeline as cmd

    monkeypatch.setattr(cmd, "_console_setup", lambda args: pytest.fail("started despite a typo"))
    assert main(["run", "--stages", "ingest,valdate"]) == 2
    assert "unknown stage(s) ['valdate']" in capsys.readouterr().err
