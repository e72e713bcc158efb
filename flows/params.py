"""The one strict loader: params.yaml (+ `--set key=value` overrides) -> frozen config dataclasses.

Each component owns its section's dataclass; this module only knows which class reads which
section. Unknown, missing and mistyped keys are errors naming the file, section and key: a
missing key is never filled from the dataclass default (defaults serve Python callers only).
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # the section classes, for type checkers and readers; loaded lazily at run time (section_class)
    from components.audit.config import AuditConfig
    from components.bias.config import BiasConfig
    from components.data.config import DataConfig
    from components.evaluate.config import EvaluateConfig
    from components.filter.config import FilterConfig
    from components.registry import RegistryConfig
    from components.report.build import ReportConfig
    from components.train.config import TrainConfig
    from flows.config import PipelineConfig

# section name -> "module:Class". Classes live in light modules (no torch import at load time).
SECTIONS: dict[str, str] = {
    "pipeline": "flows.config:PipelineConfig",
    "data": "components.data.config:DataConfig",
    "registry": "components.registry:RegistryConfig",
    "report": "components.report.build:ReportConfig",
    "evaluate": "components.evaluate.config:EvaluateConfig",
    "train": "components.train.config:TrainConfig",
    "bias": "components.bias.config:BiasConfig",
    "audit": "components.audit.config:AuditConfig",
    "filter": "components.filter.config:FilterConfig",
}


class ParamsError(ValueError):
    """A params.yaml problem a user can fix; the message names file, section and key."""


@dataclass(frozen=True)
class Params:
    """All sections, resolved and typed: `params.train` is the TrainConfig, `params.data` the DataConfig, ...

    One field per SECTIONS entry (a test keeps them equal); the classes are imported lazily by `section_class`,
    so the annotations below are strings only (`clip-pipeline --help` stays light).
    """

    pipeline: PipelineConfig
    data: DataConfig
    registry: RegistryConfig
    report: ReportConfig
    evaluate: EvaluateConfig
    train: TrainConfig
    bias: BiasConfig
    audit: AuditConfig
    filter: FilterConfig
    source: str = ""

    @property
    def sections(self) -> dict[str, Any]:
        """Section name -> its config, in SECTIONS order."""
        return {name: getattr(self, name) for name in SECTIONS}

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (recorded beside every output)."""
        return {k: dataclasses.asdict(v) for k, v in self.sections.items()}


def section_class(name: str) -> type:
    """Import the dataclass that owns section `name`."""
    module, cls = SECTIONS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def load_params(path: str | Path = "params.yaml", overrides: Sequence[str] = ()) -> Params:
    """Read and validate params.yaml; `overrides` are "section.key=value" strings (value parsed as YAML)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: not found. Run from the project root or pass --params PATH.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: top level must be a mapping of sections")
    for item in overrides:
        _apply_override(raw, item, path)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ParamsError(f"{path}: unknown section(s) {unknown}; known: {sorted(SECTIONS)}")
    sections = {}
    for name in SECTIONS:
        if name not in raw:
            raise ParamsError(f"{path}: missing section '{name}'")
        sections[name] = build_config(section_class(name), raw[name] or {}, f"{path}: {name}")
    return Params(**sections, source=str(path))


def _apply_override(raw: dict[str, Any], item: str, path: Path) -> None:
    key, sep, value = item.partition("=")
    if not sep or "." not in key:
        raise ParamsError(f"override {item!r}: expected section.key=value")
    *parents, leaf = key.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ParamsError(f"override {item!r}: {p} is not a section")
    node[leaf] = yaml.safe_load(value)


def build_config(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """Build dataclass `cls` from a mapping, checking keys and types recursively."""
    if not isinstance(data, Mapping):
        raise ParamsError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    kwargs = {name: _coerce(hints[name], data[name], f"{where}.{name}") for name in fields if name in data}
    # params.yaml is the one source: a dataclass default never stands in for a deleted key (they drift)
    missing = [name for name in fields if name not in data]
    if missing:
        keys = f"key '{missing[0]}'" if len(missing) == 1 else f"keys {missing}"
        raise ParamsError(f"{where}: missing {keys}; every setting is spelled out in params.yaml (copy it from the project's)")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise ParamsError(f"{where}: {e}") from e


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except ParamsError as e:
                errors.append(str(e))
        raise ParamsError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {args}")
    if origin is typing.Literal:
        if value not in args:
            raise ParamsError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (tuple, list, Sequence) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ParamsError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)  # a plain dict: dataclasses.asdict (Params.to_dict) cannot copy a mappingproxy
    if dataclasses.is_dataclass(tp):
        return build_config(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where}: expected a string, got {value!r}")
        return value
    return value
