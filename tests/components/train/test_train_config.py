import pytest

from components.train.config import TrainConfig


def test_defaults_are_valid() -> None:
    cfg = TrainConfig()
    assert cfg.model == "tiny" and cfg.strategy == "deepspeed" and cfg.precision == "fp32"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "fp16"}, "fp16 needs use_gpu"),
        ({"warmup": 300, "steps": 300}, "warmup"),
        ({"zero_stage": 4}, "zero_stage"),
        ({"eval_every": 10}, "eval_dataset"),
        ({"loss": "siglip", "local_loss": True}, "local_loss"),
        ({"local_loss": True, "workers": 2}, "gather_with_grad"),
        ({"batch_size": 0}, "batch_size"),
        ({"min_workers": 3, "workers": 2}, "min_workers must be in"),
        ({"min_workers": 1, "workers": 2}, "needs strategy: ddp"),  # ZeRO checkpoints need the same world size
    ],
)
def test_cross_field_checks(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_fp16_allowed_on_gpu() -> None:
    assert TrainConfig(precision="fp16", use_gpu=True).precision == "fp16"


def test_elastic_with_ddp_is_allowed() -> None:
    assert TrainConfig(min_workers=1, workers=4, strategy="ddp").min_workers == 1
    assert TrainConfig(min_workers=2, workers=2).min_workers == 2  # == workers: fixed size, any strategy
