"""FLIP patch dropout: kept-token count, class token kept, patches a per-image subset, no-op in eval and at 0."""

import pytest
import torch

import clip_core
from clip_core.vit import PatchDropout


def test_patch_dropout_keeps_cls_and_a_subset_of_patches() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 1 + 16, 8)  # (B, 1+N, W)
    pd = PatchDropout(0.75).train()
    y = pd(x)
    assert y.shape == (3, 1 + 4, 8)  # int(16 * 0.25) patches kept
    assert torch.equal(y[:, 0], x[:, 0])  # the class token always survives
    kept = []
    for b in range(3):
        rows = [int((x[b, 1:] == tok).all(-1).nonzero()) for tok in y[b, 1:]]  # each kept token is one of b's patches
        assert len(set(rows)) == 4
        kept.append(frozenset(rows))
    assert len(set(kept)) > 1  # each image draws its own subset
    assert PatchDropout(0.99).train()(x).shape[1] == 2  # at least one patch is kept
    assert pd.eval()(x) is x and PatchDropout(0.0).train()(x) is x
    with pytest.raises(ValueError, match="patch dropout"):
        PatchDropout(1.0)


def test_model_patch_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    model = clip_core.create_model("tiny")
    images = torch.randn(4, 3, 32, 32)
    model.eval()
    ref = model.encode_image(images)
    model.set_patch_dropout(0.5)
    assert torch.equal(model.encode_image(images), ref)  # eval sees every patch
    model.train()
    assert not torch.allclose(model.encode_image(images), ref, atol=1e-4)
    model.set_patch_dropout(0.0)
    assert torch.allclose(model.encode_image(images), ref, atol=1e-6)
    assert set(model.state_dict()) == set(clip_core.create_model("tiny").state_dict())  # no new keys
    with pytest.raises(ValueError, match="ViT"):
        clip_core.create_model("tiny-rn").set_patch_dropout(0.5)
