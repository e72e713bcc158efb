"""The report's first screen as facts: promoted or not and why, headline metrics beside the previous champion's,
data counts, and the overlap and bias verdicts in a sentence each (the HTML page and the Prefect artifact share it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .html import pct

# (column title, metric suffix after "<dataset>/"): the headline metric of each task, in the order shown.
HEADLINE_METRICS = [
    ("zero-shot top-1", "zeroshot_classification/acc1"),
    ("linear probe top-1", "linear_probe/lp_acc1"),
    ("image R@1", "zeroshot_retrieval/image_retrieval_recall@1"),
    ("text R@1", "zeroshot_retrieval/text_retrieval_recall@1"),
]


@dataclass
class Decision:
    """What the registry decided for this run's model."""

    state: str  # "promoted" | "kept" | "none" (no registry entry for this run)
    title: str
    why: str
    metric: str = ""
    value: float | None = None
    champion_value: float | None = None
    champion_version: int | None = None


@dataclass
class Headline:
    """Everything the first screen shows."""

    decision: Decision
    columns: list[str]
    rows: list[dict[str, Any]]  # {"dataset", "cells": [{"value", "champion", "delta"} | None per column]}
    counts: list[tuple[str, str, str]]  # (label, number, detail)
    verdicts: list[tuple[str, str, str, str]]  # (name, state ok|bad|warn, sentence, anchor)
    training: dict[str, Any] = field(default_factory=dict)
    n_warnings: int = 0


def _this_and_previous(registry: dict | None, evaluation: dict | None) -> tuple[dict | None, dict | None]:
    """This run's registry entry (the newest one whose metrics are this evaluation's) and the champion before it."""
    entries = (registry or {}).get("entries") or []
    idx = next((i for i in range(len(entries) - 1, -1, -1) if evaluation and entries[i].get("metrics") == evaluation), None)
    if idx is None:  # not registered (yet): compare with the current champion
        return None, (registry or {}).get("champion")
    previous = next((e for e in reversed(entries[:idx]) if e.get("promoted")), None)
    return entries[idx], previous


def decide(registry: dict | None, evaluation: dict | None, metric: str) -> tuple[Decision, dict | None]:
    """The promotion verdict in words, and the champion this run was compared with."""
    this, previous = _this_and_previous(registry, evaluation)
    value = (evaluation or {}).get(metric)
    champ = (previous or {}).get("metrics", {}).get(metric)
    kw = dict(metric=metric, value=value, champion_value=champ, champion_version=(previous or {}).get("version"))
    if this is None:
        why = f"{metric} = {pct(value)}" if value is not None else "no evaluation metrics"
        return Decision("none", "Not registered", why + " (the register stage did not run)", **kw), previous
    if this.get("promoted"):
        title = f"Promoted: champion v{this['version']}"
    else:
        title = f"Not promoted: champion v{kw['champion_version']} kept"
    if champ is not None and value is not None:
        why = f"{metric}: {pct(value)} vs champion v{kw['champion_version']} {pct(champ)} ({100 * (value - champ):+.1f} points)"
    else:
        why = this.get("reason", "")
    return Decision("promoted" if this.get("promoted") else "kept", title, why, **kw), previous


def metric_grid(evaluation: dict | None, champion: dict | None) -> tuple[list[str], list[dict[str, Any]]]:
    """Datasets x headline metrics, each cell with the previous champion's value and the change."""
    evaluation = evaluation or {}
    old = (champion or {}).get("metrics", {})
    datasets = list(dict.fromkeys(k.split("/", 1)[0] for k in evaluation))
    used = [(t, s) for t, s in HEADLINE_METRICS if any(f"{d}/{s}" in evaluation for d in datasets)]
    rows = []
    for d in datasets:
        cells = []
        for _, suffix in used:
            v, c = evaluation.get(f"{d}/{suffix}"), old.get(f"{d}/{suffix}")
            cells.append(None if v is None else {"value": v, "champion": c, "delta": None if c is None else v - c})
        if any(cells):
            rows.append({"dataset": d, "cells": cells})
    return [t for t, _ in used], rows


def data_counts(ingest: dict | None, dedup: dict | None, validate: dict | None) -> list[tuple[str, str, str]]:
    """In, quarantined (by reason), duplicates, filtered out of training; with validation's verdict."""
    ingest, dedup = ingest or {}, dedup or {}
    reasons = ingest.get("quarantine_by_reason") or {}
    counts = [
        ("samples in", f"{ingest.get('n_input', '-')}", f"{ingest.get('n_ingested', '-')} ingested"),
        ("quarantined", f"{ingest.get('n_quarantined', '-')}", ", ".join(f"{k} {v}" for k, v in reasons.items()) or "none"),
        ("duplicates", f"{dedup.get('rows_in_clusters', '-')}",
         f"{dedup.get('exact_pairs', 0)} exact, {dedup.get('near_pairs', 0)} near pairs"),
        ("filtered", f"{dedup.get('excluded', 0)}", f"dedup policy {dedup.get('policy', '-')}"),
    ]  # fmt: skip
    if validate is not None:
        counts[1] = (*counts[1][:2], counts[1][2] + ("; validation passed" if validate.get("passed") else "; VALIDATION FAILED"))
    return counts


def verdicts(overlap: dict | None, audit: dict | None, bias: dict | None, findings: str) -> list[tuple[str, str, str, str]]:
    """One sentence each for the overlap audit and the bias probe, with the anchor of their details."""
    out = []
    if overlap is not None:
        passed = (audit or {}).get("gate/passed", True)
        line = overlap.get("summary", {}).get("line", "overlap audited")
        out.append(("Overlap", "ok" if passed else "bad", f"{line}; gate {'passed' if passed else 'FAILED'}.", "overlap"))
    if bias is not None:
        gate = bias.get("gate", {})
        first = next((x for x in findings.splitlines() if x.strip()), "")
        state = "ok" if gate.get("passed", True) else "bad"
        text = ("Gate passed. " if state == "ok" else f"Gate FAILED ({len(gate.get('violations', []))} violation(s)). ") + first
        out.append(("Bias", state, text, "bias"))
    return out


def markdown(h: Headline, report_url: str) -> str:
    """The same headline for the Prefect run page."""
    d = h.decision
    lines = [f"## {d.title}", "", d.why, "", "| dataset | " + " | ".join(h.columns) + " |", "|---" * (len(h.columns) + 1) + "|"]
    for r in h.rows:
        cells = []
        for c in r["cells"]:
            if c is None:
                cells.append("-")
            elif c["champion"] is None:
                cells.append(pct(c["value"]))
            else:
                cells.append(f"{pct(c['value'])} ({100 * c['delta']:+.1f} vs {pct(c['champion'])})")
        lines.append(f"| {r['dataset']} | " + " | ".join(cells) + " |")
    lines += ["", "- **Data:** " + "; ".join(f"{label} {n} ({detail})" for label, n, detail in h.counts)]
    lines += [f"- **{name}:** {sentence}" for name, _, sentence, _ in h.verdicts]
    if h.training:
        lines.append(f"- **Training:** final loss {h.training.get('loss', float('nan')):.3f} at step {h.training.get('step')}")
    if h.n_warnings:
        lines.append(f"- **Warnings:** {h.n_warnings} (see the report)")
    lines += ["", f"Report: {report_url}"]
    return "\n".join(lines) + "\n"
