import math

import pytest

import clip_core
from components.train.optim import build_optimizer, build_scheduler, lr_factor, param_groups


def test_param_groups_exclude_gains_biases_embeddings_and_logit_scale() -> None:
    model = clip_core.create_model("tiny")
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay, decay = param_groups(model, wd=0.1)
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.1
    nd = {names[id(p)] for p in no_decay["params"]}
    d = {names[id(p)] for p in decay["params"]}
    assert len(nd) + len(d) == len(names)
    for n in (
        "logit_scale",
        "token_embedding.weight",
        "positional_embedding",
        "visual.class_embedding",
        "visual.positional_embedding",
        "ln_final.weight",
        "ln_final.bias",
        "visual.ln_pre.weight",
        "transformer.resblocks.0.attn.in_proj_bias",
        "transformer.resblocks.0.ln_1.weight",
    ):
        assert n in nd, n
    for n in (
        "text_projection",
        "visual.proj",
        "visual.conv1.weight",
        "transformer.resblocks.0.attn.in_proj_weight",
        "transformer.resblocks.0.mlp.c_fc.weight",
    ):
        assert n in d, n


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.1), (4, 0.5), (9, 1.0), (10, 1.0), (55, 0.5), (100, 0.0), (150, 0.0)],
)
def test_warmup_then_cosine_known_values(step: int, expected: float) -> None:
    assert lr_factor(step, warmup=10, total=100) == pytest.approx(expected, abs=1e-9)


def test_scheduler_drives_optimizer_lr() -> None:
    model = clip_core.create_model("tiny")
    opt = build_optimizer(model, lr=1e-3, wd=0.1, betas=(0.9, 0.98), eps=1e-6)
    sched = build_scheduler(opt, warmup=10, total=100)
    seen = []
    for _ in range(56):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(1e-4)
    assert seen[9] == pytest.approx(1e-3)
    assert seen[55] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert all(g["lr"] == opt.param_groups[0]["lr"] for g in opt.param_groups)
