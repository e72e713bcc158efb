"""Checkpoint interop with open_clip (test-only dependency): same keys, shapes and features."""

import pytest
import torch

from clip_core import create_model, image_transform, infer_config

open_clip = pytest.importorskip("open_clip")
pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    theirs = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    ours = create_model("ViT-B-32").eval()
    return theirs, ours


def _features(model, images, tokens):
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokens)


def test_open_clip_into_ours(pair) -> None:
    theirs, ours = pair
    sd = theirs.state_dict()
    ours.load_state_dict(sd, strict=True)
    assert infer_config(sd) == ours.cfg
    images = torch.randn(2, 3, 224, 224)
    tokens = open_clip.tokenize(["a photo of a cat", "a diagram"])
    (ti, tt), (oi, ot) = _features(theirs, images, tokens), _features(ours, images, tokens)
    assert torch.allclose(ti, oi, atol=1e-4, rtol=1e-4)
    assert torch.allclose(tt, ot, atol=1e-5, rtol=1e-5)


def test_ours_into_open_clip(pair) -> None:
    theirs, _ = pair
    torch.manual_seed(1)
    ours = create_model("ViT-B-32").eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    images = torch.randn(2, 3, 224, 224)
    tokens = open_clip.tokenize(["red circle", "blue square"])
    (ti, tt), (oi, ot) = _features(theirs, images, tokens), _features(ours, images, tokens)
    assert torch.allclose(ti, oi, atol=1e-4, rtol=1e-4)
    assert torch.allclose(tt, ot, atol=1e-5, rtol=1e-5)


def test_resnet_parity() -> None:
    torch.manual_seed(0)
    theirs = open_clip.create_model("RN50", pretrained=None).eval()
    ours = create_model("RN50").eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(theirs.encode_image(images), ours.encode_image(images), atol=1e-4, rtol=1e-4)


def test_eval_transform_matches_open_clip() -> None:
    from PIL import Image

    img = Image.fromarray((torch.rand(300, 200, 3) * 255).byte().numpy())
    _, _, theirs = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    assert torch.allclose(image_transform(224, is_train=False)(img), theirs(img), atol=1e-6)
