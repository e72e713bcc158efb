import pickle

import pytest
import torch

from clip_core import create_model, infer_config, load_checkpoint, load_state_dict, save_checkpoint


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_safetensors_round_trip_with_config(tmp_path) -> None:
    model = create_model("tiny")
    path = save_checkpoint(model, tmp_path / "m")
    assert path.name == "m.safetensors" and (tmp_path / "m.json").exists()
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file
    loaded = load_checkpoint(path)
    assert loaded.cfg == model.cfg and _same(model, loaded)


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "module"])
def test_torch_files_in_common_layouts(tmp_path, wrap: str) -> None:
    model = create_model("tiny-rn")
    sd = model.state_dict()
    if wrap == "state_dict":
        sd = {"state_dict": sd, "epoch": 3}
    elif wrap == "module":
        sd = {f"module.{k}": v for k, v in sd.items()}
    torch.save(sd, tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt")  # no config: inferred from the keys
    assert loaded.cfg == model.cfg and _same(model, loaded)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_refuses_pickled_objects(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    with pytest.raises(ValueError, match="weights_only"):
        load_state_dict(path)


def test_infers_vit_config_and_resizes_positions(tmp_path) -> None:
    model = create_model("tiny")
    assert infer_config(model.state_dict()) == model.cfg
    torch.save(model.state_dict(), tmp_path / "m.bin")
    bigger = load_checkpoint(tmp_path / "m.bin", config=_cfg_with_image_size(model, 48))
    assert bigger.visual.positional_embedding.shape == (1 + 6 * 6, 128)
    # the class-token position is carried over unchanged
    assert torch.equal(bigger.visual.positional_embedding[0], model.visual.positional_embedding[0])
    bigger.encode_image(torch.randn(1, 3, 48, 48))


def _cfg_with_image_size(model, size: int):
    from clip_core import CLIPConfig

    d = model.cfg.to_dict()
    d["vision_cfg"]["image_size"] = size
    return CLIPConfig.from_dict(d)


def test_mismatched_checkpoint_is_a_clear_error(tmp_path) -> None:
    torch.save(create_model("tiny").state_dict(), tmp_path / "m.pt")
    with pytest.raises(ValueError, match="does not match"):
        load_checkpoint(tmp_path / "m.pt", config="tiny-rn")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
