"""train.compile: the compiled engines (DDP and DeepSpeed) step exactly as eager ones and checkpoint plain keys.

Inductor's C++ code generation takes minutes on a busy 2-core CPU, so the test compiles with the
`aot_eager` backend: Dynamo traces forward and backward (graph breaks, guards, patch dropout's RNG)
as in production, without generating kernels. BENCHMARKS.md has the inductor timings.
"""

from pathlib import Path

import pytest
import torch

import clip_core
from components.train.config import TrainConfig
from components.train.engine import build_engine
from components.train.loop import _setup_distributed, build_loss
from infra.deepspeed_config import deepspeed_config


def test_compile_prefix_dropped_from_foreign_state_dicts() -> None:
    from clip_core.hub import _normalise_keys

    sd = {"_orig_mod.logit_scale": torch.tensor(1.0), "_orig_mod.visual.proj": torch.zeros(2)}
    assert set(_normalise_keys(sd)) == {"logit_scale", "visual.proj"}


def _engine(strategy: str, compiled: bool):
    cfg = TrainConfig(model="tiny", strategy=strategy, zero_stage=2, batch_size=8, warmup=1, steps=10, workers=1,
                      compile=compiled, patch_dropout=0.5)  # fmt: skip
    _setup_distributed(cfg)
    torch.manual_seed(0)
    ds = deepspeed_config(2, "fp32", 8, 1, cfg.grad_clip) if strategy == "deepspeed" else None
    return build_engine(clip_core.create_model("tiny"), cfg, torch.device("cpu"), ds), build_loss(cfg)


@pytest.mark.smoke
@pytest.mark.parametrize("strategy", ["ddp", "deepspeed"])
def test_compiled_engine_matches_eager_and_saves_plain_keys(strategy: str, tmp_path: Path, monkeypatch) -> None:
    compile_, module_compile = torch.compile, torch.nn.Module.compile
    aot = {"backend": "aot_eager"}
    monkeypatch.setattr(torch, "compile", lambda *a, **k: compile_(*a, **{**k, **aot}))
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: module_compile(self, *a, **{**k, **aot}))
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 3, 32, 32, generator=g), torch.randint(1, 1023, (8, 32), generator=g)) for _ in range(2)]
    losses, engines = {}, {}
    for compiled in (False, True):
        engine, loss_fn = engines[compiled] = _engine(strategy, compiled)
        torch.manual_seed(2)  # patch dropout's draws
        losses[compiled] = []
        for batch in batches:
            losses[compiled].append(engine.train_step([batch], loss_fn))
    compiled_engine = engines[True][0]
    if strategy == "ddp":  # it really ran compiled: a wrapper around the forward (ddp), in place (DeepSpeed's own)
        assert isinstance(compiled_engine.forward, torch._dynamo.eval_frame.OptimizedModule)
    else:
        assert compiled_engine.module._compiled_call_impl is not None
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)  # patch dropout on: training goes on, same draws
    plain = set(clip_core.create_model("tiny").state_dict())
    assert set(compiled_engine.export_state_dict()) == plain
    compiled_engine.state_to(tmp_path, rank=0)
    eager, _ = _engine(strategy, False)
    eager.state_from(tmp_path)  # strict: a compiled run's checkpoint resumes without compile, and back
    loaded, saved = eager.export_state_dict(), compiled_engine.export_state_dict()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
