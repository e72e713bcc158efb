"""From predicted and true labels plus group attributes to the bias report's numbers (pure numpy, no model)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .definition import ProbeDefinition, normalise_label
from .metrics import change, group_indices, group_stats, summarise

ALL = "all"


def grouping_name(grouping: Sequence[str]) -> str:
    """("background", "size") -> "background x size"."""
    return " x ".join(grouping)


def group_values(attrs: Mapping[str, np.ndarray], grouping: Sequence[str]) -> np.ndarray:
    """Per image, the group it belongs to: "plain" for one attribute, "plain & small" for an intersection."""
    cols = [np.asarray(attrs[a], dtype=str) for a in grouping]
    out = cols[0].astype(object)
    for c in cols[1:]:
        out = out + " & " + c.astype(object)
    return out


def variant_quantities(
    probe: ProbeDefinition, variant: str, predicted: Sequence[str], true: Sequence[str | None]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`variant/flagged:<category>`, `variant/flagged:any` and `variant/accuracy` as (num, den) per image.

    Accuracy counts only images whose true label is one of the variant's labels (name match ignores case and `_`).
    """
    pred = [normalise_label(p) for p in predicted]
    cat_of = {normalise_label(k): v for k, v in probe.flagged.items()}
    cats = np.array([cat_of.get(p, "") for p in pred], dtype=object)
    ones = np.ones(len(pred))
    q = {f"{variant}/flagged:{c}": ((cats == c).astype(float), ones) for c in probe.categories}
    if probe.categories:
        q[f"{variant}/flagged:any"] = ((cats != "").astype(float), ones)
    labels = {normalise_label(x) for x in probe.variant(variant).labels}
    true_n = [normalise_label(t) if t is not None else None for t in true]
    defined = np.array([t is not None and t in labels for t in true_n], dtype=float)
    if defined.any():
        correct = np.array([t is not None and t == p for t, p in zip(true_n, pred)], dtype=float)
        q[f"{variant}/accuracy"] = (correct * defined, defined)
    return q


def analyse(
    probe: ProbeDefinition,
    predicted: Mapping[str, Sequence[str]],
    true: Sequence[str | None],
    attrs: Mapping[str, np.ndarray],
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    min_group_size: int = 10,
    extra: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict:
    """The bias report's numbers.

    Args:
        probe: the probe definition.
        predicted: variant name -> predicted label name per image.
        true: true label name per image (None where unknown).
        attrs: attribute name -> value per image (after recoding).
        extra: more (num, den) quantities to report per group, e.g. the linear probe's `LR/accuracy`.

    Returns:
        {"quantities", "groupings": {name: {"groups", "disparity", "changes"}}}; every grouping
        (`all`, each attribute, each intersection) is bootstrapped with its own seeded stream.
    """
    quantities: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for v in probe.variants:
        quantities.update(variant_quantities(probe, v.name, predicted[v.name], true))
    quantities.update(extra or {})
    n = len(true)
    groupings = {ALL: np.full(n, ALL, dtype=object)}
    groupings.update({grouping_name(g): group_values(attrs, g) for g in probe.groupings})
    out = {}
    for i, (name, values) in enumerate(groupings.items()):
        stats = group_stats(quantities, group_indices(values), n_boot, [seed, i])
        res = summarise(stats, confidence, min_group_size)
        res["changes"] = {}
        for v in probe.variants:
            if v.name == probe.baseline:
                continue
            res["changes"][v.name] = {
                metric: change(stats, f"{probe.baseline}/{metric}", f"{v.name}/{metric}", confidence)
                for metric in _metrics(quantities, v.name)
                if f"{probe.baseline}/{metric}" in quantities
            }
        out[name] = res
    return {"quantities": list(quantities), "groupings": out}


def _metrics(quantities: Mapping[str, object], variant: str) -> list[str]:
    return [k.split("/", 1)[1] for k in quantities if k.startswith(f"{variant}/")]
