"""The model resolver: every input layout gives the same model; foreign pickles are refused; errors name the fix."""

import json
import pickle
import warnings

import pytest
import torch

from clip_core import Tokenizer, create_model, save_checkpoint
from clip_core.hub import detect_format, load_model
from clip_core.model_dir import export_open_clip, import_model
from clip_core.torchscript import load_torchscript_state_dict
from clip_core.transforms import PreprocessConfig

CAPTIONS = ["a red circle", "a blue square on grey", "two green triangles"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("tiny", quick_gelu=True).eval()
    tok = Tokenizer.train(CAPTIONS * 5, vocab_size=300, context_length=32)
    d = tmp_path_factory.mktemp("tok")
    tok.save(d / "tokenizer.json")
    return model, tok, d / "tokenizer.json"


def _features(model, tok):
    torch.manual_seed(1)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tok(CAPTIONS))


def _assert_same(a, b, tok):
    for x, y in zip(_features(a, tok), _features(b, tok), strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layout", ["bare", "state_dict", "module", "safetensors"])
def test_checkpoint_files_with_config(tmp_path, tiny, layout) -> None:
    model, tok, tok_path = tiny
    sd = model.state_dict()
    path = tmp_path / ("m.safetensors" if layout == "safetensors" else "m.pt")
    if layout == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        if layout == "module":
            sd = {f"module.{k}": v for k, v in sd.items()}
        torch.save({"state_dict": sd, "epoch": 1} if layout == "state_dict" else sd, path)
    # quick_gelu is not visible in the weights: without the config, the model would be another one
    loaded = load_model(path, model_config=json.dumps(model.cfg.to_dict()), tokenizer=tok_path)
    assert loaded.model.cfg == model.cfg and loaded.format in ("safetensors", "torch-state-dict")
    _assert_same(model, loaded.model, tok)
    inferred = load_model(path, tokenizer=tok_path)  # shapes alone: GELU, a different identity
    assert not inferred.model.cfg.quick_gelu and inferred.sha256 != loaded.sha256


def test_torchscript_archive_reads_without_running_it(tmp_path, tiny) -> None:
    model, tok, tok_path = tiny
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (torch.randn(1, 3, 32, 32), tok(["x"])), check_trace=False)
    traced.save(tmp_path / "ViT-tiny.pt")
    assert detect_format(tmp_path / "ViT-tiny.pt") == "torchscript"
    sd = load_torchscript_state_dict(tmp_path / "ViT-tiny.pt")
    assert sd.keys() == model.state_dict().keys()
    loaded = load_model(tmp_path / "ViT-tiny.pt", tokenizer=tok_path)
    assert loaded.model.cfg.quick_gelu  # OpenAI's released models: QuickGELU by default
    _assert_same(model, loaded.model, tok)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_objects_are_refused_with_the_fix(tmp_path, capsys) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"w": _Evil()}}, f)
    with pytest.raises(ValueError, match=r"evil\.pt.*weights_only.*re-save"):
        load_model(path)
    assert "pwned" not in capsys.readouterr().out


def test_torchscript_archive_with_a_foreign_global_is_refused(tmp_path) -> None:
    import zipfile

    src = tmp_path / "ok.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(src)
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("/data.pkl"):
                data = pickle.dumps(_Evil(), protocol=2)
            zout.writestr(item, data)
    with pytest.raises(ValueError, match=r"bad\.pt.*refusing to load global"):
        load_torchscript_state_dict(bad)


def test_import_export_round_trip(tmp_path, tiny) -> None:
    model, tok, tok_path = tiny
    save_checkpoint(model, tmp_path / "ckpt")  # ckpt.safetensors + its config beside it
    imported = import_model(tmp_path / "ckpt.safetensors", tmp_path / "dir", tokenizer=tok_path)
    d = tmp_path / "dir"
    prov = json.loads((d / "provenance.json").read_text())
    assert prov["format"] == "safetensors" and len(prov["source_sha256"]) == 64 and prov["imported_at"]
    again = load_model(d)
    assert again.format == "model-dir" and again.preprocess == PreprocessConfig(size=32)
    _assert_same(model, again.model, imported.tokenizer)
    warns = export_open_clip(d, tmp_path / "hub")
    assert warns and "not CLIP's BPE" in warns[0]  # a trained tokenizer goes along, with a warning
    hub_cfg = json.loads((tmp_path / "hub" / "open_clip_config.json").read_text())
    assert hub_cfg["model_cfg"]["quick_gelu"] and hub_cfg["preprocess_cfg"]["size"] == 32
    back = load_model(tmp_path / "hub")
    assert back.format == "open_clip-hub" and torch.equal(back.tokenizer(CAPTIONS), tok(CAPTIONS))
    _assert_same(model, back.model, tok)


def test_preprocess_from_the_model_dir(tmp_path, tiny) -> None:
    model, _, tok_path = tiny
    import_model(_saved(model, tmp_path), tmp_path / "d", tokenizer=tok_path)
    pre = {"size": 224, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear", "resize_mode": "squash"}
    (tmp_path / "d" / "preprocess.json").write_text(json.dumps(pre))
    got = load_model(tmp_path / "d").preprocess
    assert got.size == 32 and got.mean == (0.5, 0.5, 0.5) and got.resize_mode == "squash"  # the model's size wins


def _saved(model, tmp_path):
    torch.save(model.state_dict(), tmp_path / "m.pt")
    (tmp_path / "m.json").write_text(json.dumps(model.cfg.to_dict()))
    return tmp_path / "m.pt"


def test_bad_inputs_name_the_file_and_the_fix(tmp_path, tiny) -> None:
    model, _, tok_path = tiny
    with pytest.raises(FileNotFoundError, match=r"missing\.pt: not found"):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="neither a model directory"):
        load_model(tmp_path)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"(?s)m\.pt: weights do not match.*--model-config"):
        load_model(tmp_path / "m.pt", model_config="tiny-rn", tokenizer=tok_path)
    with pytest.raises(FileNotFoundError, match="--tokenizer"):
        load_model(tmp_path / "m.pt")  # vocab 1024: not CLIP's BPE, so no default tokenizer
    (tmp_path / "junk.safetensors").write_bytes(b"not really")
    with pytest.raises(ValueError, match=r"junk\.safetensors: not a valid safetensors"):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(ValueError, match="attentional_pool"):
        load_model(tmp_path / "m.pt", model_config='{"embed_dim": 64, "vision_cfg": {"attentional_pool": true}}')
