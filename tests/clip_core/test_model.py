import math

import pytest
import torch

import clip_core
from clip_core import CLIPConfig, create_model, list_models

# Parameter counts of the published architectures (OpenAI CLIP / open_clip, incl. logit_scale).
PUBLISHED_PARAMS = {
    "ViT-B-32": 151_277_313,
    "ViT-B-16": 149_620_737,
    "ViT-L-14": 427_616_513,
    "RN50": 102_007_137,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_published_shapes(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("name", ["tiny", "tiny-rn"])
def test_forward_shapes_and_api(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    S, L = model.image_size, model.context_length
    images = torch.randn(3, 3, S, S)
    tokens = torch.randint(1, 100, (3, L))
    img, txt, scale = model(images, tokens)
    assert img.shape == txt.shape == (3, model.cfg.embed_dim)
    assert torch.allclose(img.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(scale, torch.tensor(1 / 0.07), rtol=1e-5)
    raw = model.encode_image(images)
    assert torch.allclose(torch.nn.functional.normalize(raw, dim=-1), img, atol=1e-6)


def test_every_shipped_config_builds() -> None:
    for name in list_models():
        with torch.device("meta"):
            create_model(name)


def test_logit_scale_clamped_at_100() -> None:
    model = create_model("tiny")
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale().item() == pytest.approx(100.0)


def test_text_pools_at_eot_and_is_causal() -> None:
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    eot = model.cfg.text_cfg.vocab_size - 1
    a = torch.tensor([[5, 7, eot, 0, 0] + [0] * 27])
    b = a.clone()
    b[0, 3:] = 9  # tokens after EOT must not change the pooled feature (causal mask)
    assert torch.allclose(model.encode_text(a), model.encode_text(b), atol=1e-6)
    c = a.clone()
    c[0, 1] = 8  # a token before EOT must change it
    assert not torch.allclose(model.encode_text(a), model.encode_text(c))


def test_quick_gelu_changes_activation() -> None:
    torch.manual_seed(0)
    m1 = create_model("tiny")
    m2 = create_model("tiny", quick_gelu=True)
    m2.load_state_dict(m1.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(m1.encode_image(x), m2.encode_image(x))
    assert type(m2.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"


def test_gradient_checkpointing_same_outputs_and_grads() -> None:
    torch.manual_seed(0)
    model = create_model("tiny")
    x, t = torch.randn(2, 3, 32, 32), torch.randint(1, 1000, (2, 32))

    def grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        img, txt, scale = model(x, t)
        loss = (scale * img @ txt.T).logsumexp(-1).mean()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    l0, g0 = grads()
    model.set_grad_checkpointing(True)
    l1, g1 = grads()
    assert torch.allclose(l0, l1)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g0, g1))


def test_config_errors_name_the_problem(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"embed_dim": 8, "vision_cfg": {"widht": 3}}')
    with pytest.raises(ValueError, match="widht"):
        create_model(bad)
    with pytest.raises(ValueError, match="unknown model"):
        create_model("ViT-Z-99")
    with pytest.raises(ValueError, match="multiple of patch_size"):
        CLIPConfig.from_dict({"embed_dim": 8, "vision_cfg": {"image_size": 30, "patch_size": 8}})


def test_public_api() -> None:
    assert {"create_model", "list_models", "load_checkpoint", "ClipLoss", "Tokenizer"} <= set(clip_core.__all__)
    assert math.isclose(create_model("tiny").logit_scale.item(), math.log(1 / 0.07), rel_tol=1e-6)
