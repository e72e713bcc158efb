"""Checkpoint loading never unpickles code: a malicious pickle is refused by every loader the pipeline uses."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

import clip_core
from components.train.engine import weights_only_torch_load

pytestmark = pytest.mark.faults


class _Payload:
    """Unpickling this runs `exec`, which writes a flag file: what an attacker's checkpoint would do."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def __reduce__(self):
        return (exec, (f"open({str(self.flag)!r}, 'w').write('pwned')",))


@pytest.fixture()
def evil(tmp_path: Path) -> tuple[Path, Path]:
    flag = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": _Payload(flag)}, path)
    return path, flag


def test_the_payload_is_real(evil: tuple[Path, Path]) -> None:
    path, flag = evil
    torch.load(path, weights_only=False)  # what an unsafe loader does: the code runs
    assert flag.read_text() == "pwned"


def test_clip_core_refuses_a_malicious_checkpoint(evil: tuple[Path, Path]) -> None:
    path, flag = evil
    with pytest.raises(ValueError, match="weights_only=True"):
        clip_core.load_checkpoint(path)
    with pytest.raises(ValueError, match="weights_only=True"):
        clip_core.load_state_dict(path)
    assert not flag.exists()


def test_deepspeed_resume_loader_refuses_a_malicious_checkpoint(evil: tuple[Path, Path]) -> None:
    """DeepSpeed's own loader asks for weights_only=False; inside the guard it gets True anyway."""
    path, flag = evil
    with weights_only_torch_load(), pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location="cpu", weights_only=False)
    assert not flag.exists()
    assert torch.load.__module__ == "torch.serialization"  # the guard put the original back


def test_plain_training_state_loads_with_weights_only(tmp_path: Path) -> None:
    state = {"model": {"w": torch.ones(3)}, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}}
    torch.save(state, tmp_path / "train_state.pt")
    with weights_only_torch_load():
        got = torch.load(tmp_path / "train_state.pt", weights_only=False)
    assert torch.equal(got["model"]["w"], torch.ones(3))
