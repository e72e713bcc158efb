"""Probe definition files (YAML or JSON): label sets, flagged labels and their categories, variants, group attributes."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROBES_DIR = Path(__file__).parent / "probes"
KEYS = {
    "name",
    "description",
    "classes",
    "flagged",
    "templates",
    "variants",
    "attributes",
    "intersections",
    "recode",
    "true_label",
    "baseline",
}


@dataclass(frozen=True)
class Variant:
    """One label set to classify with: its name and class names in order."""

    name: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class ProbeDefinition:
    """A parsed probe file. `variants[0]` is the base label set; the others are compared with `baseline`."""

    name: str
    variants: tuple[Variant, ...]
    flagged: Mapping[str, str]  # label -> category
    attributes: tuple[str, ...]  # without the `group_` prefix
    groupings: tuple[tuple[str, ...], ...]  # each attribute alone, then the intersections
    templates: tuple[str, ...] = ()  # empty: the dataset's templates.txt
    recode: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    true_label: str | None = None  # format string over manifest columns; None: classnames.txt[label]
    baseline: str = "base"
    description: str = ""
    source: str = ""

    @property
    def categories(self) -> tuple[str, ...]:
        """Flagged categories in first-seen order."""
        return tuple(dict.fromkeys(self.flagged.values()))

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


def normalise_label(s: str) -> str:
    """Loose class-name match: case, `_` and repeated spaces do not matter ("Latino_Hispanic Male" == "latino hispanic male")."""
    return re.sub(r"\s+", " ", str(s).replace("_", " ")).strip().lower()


def resolve_probe_path(name_or_path: str | Path) -> Path:
    """A shipped probe by name (components/bias/probes/<name>.yaml) or a file path."""
    path = Path(name_or_path)
    if path.exists():
        return path
    for ext in (".yaml", ".yml", ".json"):
        shipped = PROBES_DIR / f"{name_or_path}{ext}"
        if shipped.exists():
            return shipped
    shipped = sorted(p.stem for p in PROBES_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"probe {str(name_or_path)!r}: no such file, and not a shipped probe (shipped: {shipped})")


def load_probe(name_or_path: str | Path) -> ProbeDefinition:
    """Read and check a probe file; errors name the file and key."""
    path = resolve_probe_path(name_or_path)
    text = path.read_text()
    if path.suffix == ".json":
        raw = json.loads(text)
    else:
        import yaml

        raw = yaml.safe_load(text)
    return parse_probe(raw, str(path))


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{where}: expected a list of non-empty strings, got {value!r}")
    return [v.strip() for v in value]


def _unique(labels: Sequence[str], where: str) -> None:
    seen: dict[str, str] = {}
    for label in labels:
        key = normalise_label(label)
        if key in seen:
            raise ValueError(f"{where}: label {label!r} appears twice (as {seen[key]!r})")
        seen[key] = label


def parse_probe(raw: Any, source: str = "<probe>") -> ProbeDefinition:
    """Build a ProbeDefinition from the mapping a probe file holds (format: components/bias/README.md)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: top level must be a mapping")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(KEYS)}")
    for key in ("classes", "attributes"):
        if key not in raw:
            raise ValueError(f"{source}: missing key '{key}'")
    classes = _strings(raw["classes"], f"{source}: classes")
    flagged: dict[str, str] = {}
    for category, labels in (raw.get("flagged") or {}).items():
        for label in _strings(labels, f"{source}: flagged.{category}"):
            if label in flagged:
                raise ValueError(f"{source}: flagged label {label!r} is in two categories")
            flagged[label] = str(category)
    base = classes + [lab for lab in flagged if normalise_label(lab) not in {normalise_label(c) for c in classes}]
    _unique(base, f"{source}: classes + flagged")
    variants = [Variant("base", tuple(base))]
    for i, v in enumerate(raw.get("variants") or []):
        where = f"{source}: variants[{i}]"
        if not isinstance(v, Mapping) or "name" not in v:
            raise ValueError(f"{where}: expected a mapping with 'name' and 'add' and/or 'remove'")
        add = _strings(v.get("add") or [], f"{where}.add")
        remove = {normalise_label(r) for r in _strings(v.get("remove") or [], f"{where}.remove")}
        missing = remove - {normalise_label(b) for b in base}
        if missing:
            raise ValueError(f"{where}: cannot remove {sorted(missing)}: not in the base label set")
        labels = [b for b in base if normalise_label(b) not in remove] + add
        _unique(labels, f"{where} labels")
        variants.append(Variant(str(v["name"]), tuple(labels)))
    names = [v.name for v in variants]
    if any("/" in n for n in names):
        raise ValueError(f"{source}: variant names may not contain '/': {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"{source}: variant names must be unique (and not 'base'): {names}")
    templates = tuple(_strings(raw["templates"], f"{source}: templates")) if raw.get("templates") else ()
    bad = [t for t in templates if "{c}" not in t]
    if bad:
        raise ValueError(f"{source}: templates {bad} lack the '{{c}}' placeholder")
    attributes = tuple(a.removeprefix("group_") for a in _strings(raw["attributes"], f"{source}: attributes"))
    if not attributes:
        raise ValueError(f"{source}: attributes: name at least one group attribute (manifest column group_<attr>)")
    groupings = [(a,) for a in attributes] + _intersections(raw.get("intersections", True), attributes, source)
    baseline = str(raw.get("baseline", "base"))
    if baseline not in names:
        raise ValueError(f"{source}: baseline {baseline!r} is not a variant name ({names})")
    recode = {str(a).removeprefix("group_"): {str(k): str(v) for k, v in m.items()} for a, m in (raw.get("recode") or {}).items()}
    return ProbeDefinition(
        name=str(raw.get("name", Path(source).stem)),
        variants=tuple(variants),
        flagged=flagged,
        attributes=attributes,
        groupings=tuple(groupings),
        templates=templates,
        recode=recode,
        true_label=raw.get("true_label"),
        baseline=baseline,
        description=str(raw.get("description", "")),
        source=source,
    )


def _intersections(spec: Any, attributes: tuple[str, ...], source: str) -> list[tuple[str, ...]]:
    """`true`: every combination of two or more attributes; `false`: none; or an explicit list of lists."""
    if spec is True:
        return [c for r in range(2, len(attributes) + 1) for c in itertools.combinations(attributes, r)]
    if spec is False or spec is None:
        return []
    out = []
    for combo in spec:
        combo = tuple(a.removeprefix("group_") for a in _strings(combo, f"{source}: intersections"))
        unknown = set(combo) - set(attributes)
        if unknown or len(combo) < 2:
            raise ValueError(f"{source}: intersection {list(combo)}: needs 2+ names from attributes {list(attributes)}")
        out.append(combo)
    return out
