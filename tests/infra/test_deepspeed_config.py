import pytest

from infra.deepspeed_config import deepspeed_config, load_template
from infra.ray_launcher import _ray_storage


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_templates_fill_batch_accum_clip_and_precision(stage: int) -> None:
    cfg = deepspeed_config(stage, "bf16", batch=16, accum=4, grad_clip=0.5)
    assert cfg["zero_optimization"]["stage"] == stage
    assert cfg["train_micro_batch_size_per_gpu"] == 16 and cfg["gradient_accumulation_steps"] == 4
    assert cfg["gradient_clipping"] == 0.5
    assert cfg["bf16"]["enabled"] is True and cfg["fp16"]["enabled"] is False
    assert load_template(stage)["train_micro_batch_size_per_gpu"] == "auto"  # the template is not mutated


def test_fp16_and_fp32_switches() -> None:
    assert deepspeed_config(2, "fp16", 8, 1, 1.0)["fp16"]["enabled"] is True
    fp32 = deepspeed_config(2, "fp32", 8, 1, 1.0)
    assert not fp32["fp16"]["enabled"] and not fp32["bf16"]["enabled"]


def test_unknown_stage_or_precision_is_an_error() -> None:
    with pytest.raises(ValueError, match="ZeRO stage 4"):
        deepspeed_config(4, "fp32", 8, 1, 1.0)
    with pytest.raises(ValueError, match="precision"):
        deepspeed_config(2, "fp8", 8, 1, 1.0)


def test_ray_storage_sits_beside_checkpoints() -> None:
    assert _ray_storage("/data/run/train") == "/data/run/train/ray"
    assert _ray_storage("s3://bucket/run/train/") == "s3://bucket/run/train/ray"
