"""Models in and out against open_clip itself: its checkpoints and hub dirs import, our exports load there; same features.

One random ViT-B-32 (150M parameters) per module; everything else reuses its files.
"""

import json
import os

import pytest
import torch
from PIL import Image

from clip_core import Tokenizer, export_open_clip, image_transform, import_model, load_model
from clip_core.transforms import preprocess_transform

open_clip = pytest.importorskip("open_clip")
pytestmark = pytest.mark.parity

CAPTIONS = ["a photo of a cat.", "A diagram of two RED circles!", "résumé &amp; café", "x " * 100]


@pytest.fixture(scope="module")
def theirs():
    torch.manual_seed(0)
    return open_clip.create_model("ViT-B-32", pretrained=None).eval()


@pytest.fixture(scope="module")
def inputs():
    torch.manual_seed(1)
    return torch.randn(2, 3, 224, 224), open_clip.tokenize(CAPTIONS)


@pytest.fixture(scope="module")
def expected(theirs, inputs):
    with torch.no_grad():
        return theirs.encode_image(inputs[0]), theirs.encode_text(inputs[1])


@pytest.fixture(scope="module")
def checkpoint(theirs, tmp_path_factory):
    """open_clip's state dict as a training script saves it: DDP `module.` prefixes in a `state_dict` wrapper."""
    path = tmp_path_factory.mktemp("ckpt") / "epoch_32.pt"
    torch.save({"epoch": 32, "state_dict": {f"module.{k}": v for k, v in theirs.state_dict().items()}}, path)
    return path


def _assert_features(model, tokenizer, inputs, expected) -> None:
    images, tokens = inputs
    assert torch.equal(tokenizer(CAPTIONS), tokens)  # our BPE reproduces open_clip's ids
    with torch.no_grad():
        img, txt = model.encode_image(images), model.encode_text(tokens)
    torch.testing.assert_close(img, expected[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(txt, expected[1], atol=1e-5, rtol=1e-4)


def test_open_clip_checkpoint_and_safetensors_import(theirs, checkpoint, inputs, expected, tmp_path) -> None:
    loaded = load_model(checkpoint)  # architecture from shapes, CLIP's BPE from the installed open_clip
    assert loaded.format == "torch-state-dict" and not loaded.model.cfg.quick_gelu
    _assert_features(loaded.model, loaded.tokenizer, inputs, expected)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in theirs.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    imported = import_model(tmp_path / "vit.safetensors", tmp_path / "dir", model_config="ViT-B-32")
    again = load_model(tmp_path / "dir")
    _assert_features(again.model, again.tokenizer, inputs, expected)
    assert json.loads((tmp_path / "dir" / "provenance.json").read_text())["format"] == "safetensors"
    assert imported.sha256 != again.sha256  # the directory's identity is its own weights file


def test_export_loads_in_open_clip(checkpoint, inputs, expected, tmp_path) -> None:
    assert export_open_clip(checkpoint, tmp_path / "hub") == []  # CLIP's BPE: nothing to warn about
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'hub'}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{tmp_path / 'hub'}")
    assert torch.equal(tokenizer(CAPTIONS), inputs[1])
    with torch.no_grad():
        torch.testing.assert_close(model.eval().encode_image(inputs[0]), expected[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model.encode_text(inputs[1]), expected[1], atol=1e-5, rtol=1e-4)
    img = Image.fromarray((torch.rand(300, 200, 3) * 255).byte().numpy())
    ours = preprocess_transform(load_model(tmp_path / "hub").preprocess)
    assert torch.equal(ours(img), preprocess(img))


def test_hub_dir_written_by_open_clip_imports(theirs, inputs, expected, tmp_path) -> None:
    from open_clip.push_to_hf_hub import save_config_for_hf

    hub = tmp_path / "hub"
    hub.mkdir()
    torch.save(theirs.state_dict(), hub / "open_clip_pytorch_model.bin")  # open_clip's non-safetensors layout
    save_config_for_hf(theirs, hub / "open_clip_config.json", open_clip.get_model_config("ViT-B-32"))
    loaded = load_model(hub)
    assert loaded.format == "open_clip-hub"
    _assert_features(loaded.model, loaded.tokenizer, inputs, expected)


def test_tokenizer_matches_open_clip_get_tokenizer() -> None:
    path = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    texts = [*CAPTIONS, "", "  Hello,\tWorld!!  ", "日本語 123 🙂", "don't STOP"]
    assert torch.equal(Tokenizer.from_bpe_merges(path)(texts), open_clip.get_tokenizer("ViT-B-32")(texts))


@pytest.mark.parametrize(
    ("resize_mode", "interpolation"), [("shortest", "bilinear"), ("longest", "bicubic"), ("squash", "bicubic")]
)
@pytest.mark.parametrize("shape", [(300, 200), (120, 333)])
def test_eval_transform_modes_match_open_clip(resize_mode, interpolation, shape) -> None:
    from open_clip.transform import image_transform as oc_transform

    img = Image.fromarray((torch.rand(*shape, 3) * 255).byte().numpy())
    kw = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize_mode=resize_mode, interpolation=interpolation)
    assert torch.equal(image_transform(64, is_train=False, **kw)(img), oc_transform(64, is_train=False, **kw)(img))
