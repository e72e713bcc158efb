import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from flows.params import SECTIONS, ParamsError, build_config, load_params


def test_project_params_load_every_section() -> None:
    params = load_params("params.yaml")
    assert set(params.sections) == set(SECTIONS)


def test_override_and_errors_name_the_key(tmp_path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(Path("params.yaml").read_text())
    assert load_params(p, ["pipeline.seed=7"]).pipeline.seed == 7
    with pytest.raises(ParamsError, match=r"pipeline: unknown key\(s\) \['sed'\]"):
        load_params(p, ["pipeline.sed=7"])
    with pytest.raises(ParamsError, match=r"pipeline.seed: expected an integer"):
        load_params(p, ["pipeline.seed=abc"])
    with pytest.raises(ParamsError, match="unknown section"):
        load_params(p, ["nosuch.key=1"])
    with pytest.raises(ParamsError, match="cron"):
        load_params(p, ["pipeline.retrain_cron=weekly"])
    p.write_text("{}")
    with pytest.raises(ParamsError, match="missing section 'pipeline'"):
        load_params(p)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")


@dataclass(frozen=True)
class _Inner:
    k: int = 1


@dataclass(frozen=True)
class _Outer:
    mode: Literal["a", "b"]
    sizes: tuple[int, ...] = (1,)
    inner: _Inner = _Inner()
    maybe: float | None = None


def test_build_config_types() -> None:
    cfg = build_config(_Outer, {"mode": "a", "sizes": [2, 3], "inner": {"k": 4}, "maybe": 1}, "x")
    assert cfg == _Outer("a", (2, 3), _Inner(4), 1.0)
    with pytest.raises(ParamsError, match=r"x.mode: 'c' is not one of"):
        build_config(_Outer, {"mode": "c"}, "x")
    with pytest.raises(ParamsError, match=r"x.inner: unknown key"):
        build_config(_Outer, {"mode": "a", "inner": {"q": 1}}, "x")
    with pytest.raises(ParamsError, match=r"missing keys \['mode', 'sizes', 'inner', 'maybe'\]"):
        build_config(_Outer, {}, "x")
    with pytest.raises(ParamsError, match="x: missing key 'maybe'"):  # a default never stands in for a key
        build_config(_Outer, {"mode": "a", "sizes": [2], "inner": {"k": 4}}, "x")
    with pytest.raises(ParamsError, match=r"x.sizes\[1\]: expected an integer"):
        build_config(_Outer, {"mode": "a", "sizes": [1, True]}, "x")


def test_evaluate_datasets_take_name_spec_entries_and_plain_names(tmp_path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(Path("params.yaml").read_text())
    cfg = load_params(p, ["evaluate.datasets=[colors, {cifar: 'torchvision:CIFAR10:/data/cifar'}]"]).evaluate
    assert cfg.datasets == ("colors", {"cifar": "torchvision:CIFAR10:/data/cifar"})
    with pytest.raises(ParamsError, match=r"evaluate: datasets\[0\]: expected one `name: spec` pair"):
        load_params(p, ["evaluate.datasets=[{a: x, b: y}]"])
    with pytest.raises(ParamsError, match=r"evaluate.datasets\[0\]"):
        load_params(p, ["evaluate.datasets=[3]"])


def _key_paths(cls: type, data: dict, prefix: str) -> list[str]:
    """Every key of a section in params.yaml, nested dataclass sections included."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        out.append(f"{prefix}.{f.name}")
        if dataclasses.is_dataclass(hints[f.name]) and isinstance(data.get(f.name), dict):
            out += _key_paths(hints[f.name], data[f.name], f"{prefix}.{f.name}")
    return out


def test_deleting_any_key_from_params_yaml_fails_naming_it(tmp_path) -> None:
    """params.yaml is the single source of configuration: no key can silently fall back to a default."""
    import yaml

    from flows.params import section_class

    raw = yaml.safe_load(Path("params.yaml").read_text())
    paths = [p for name in SECTIONS for p in _key_paths(section_class(name), raw[name], name)]
    assert len(paths) > 100
    for dotted in paths:
        doc = yaml.safe_load(Path("params.yaml").read_text())
        *parents, leaf = dotted.split(".")
        node = doc
        for part in parents:
            node = node[part]
        del node[leaf]
        p = tmp_path / "params.yaml"
        p.write_text(yaml.safe_dump(doc))
        with pytest.raises(ParamsError, match=rf"{'.'.join(parents[1:]) or parents[0]}.*missing key '{leaf}'"):
            load_params(p)


def test_params_has_one_typed_field_per_section() -> None:
    import typing

    import flows.params
    from flows.params import Params, section_class

    hints = typing.get_type_hints(Params, vars(flows.params) | {SECTIONS[n].split(":")[1]: section_class(n) for n in SECTIONS})
    assert [f.name for f in dataclasses.fields(Params) if f.name != "source"] == list(SECTIONS)
    assert all(hints[name] is section_class(name) for name in SECTIONS)
    params = load_params("params.yaml")
    assert all(type(getattr(params, name)) is section_class(name) for name in SECTIONS)


def test_every_dvc_yaml_param_exists_in_params_yaml() -> None:
    """dvc.yaml's `params:` lists (what re-runs a stage) name only keys params.yaml has: a typo never goes unseen."""
    import yaml

    raw = yaml.safe_load(Path("params.yaml").read_text())
    stages = yaml.safe_load(Path("dvc.yaml").read_text())["stages"]
    listed = []
    for name, stage in stages.items():
        for entry in stage.get("params", []):
            keys = [entry] if isinstance(entry, str) else [k for f, ks in entry.items() if f == "params.yaml" for k in ks]
            listed += [(name, k) for k in keys]
    assert len(listed) > 10
    missing = []
    for stage, dotted in listed:
        node = raw
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(f"{stage}: {dotted}")
                break
            node = node[part]
    assert missing == []
