"""The bias report's people-facing parts: flat summary numbers, plain-language findings, bar plots and an HTML section."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from markupsafe import Markup

from .analysis import ALL
from .definition import ProbeDefinition


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def _single(probe: ProbeDefinition) -> list[str]:
    return [g[0] for g in probe.groupings if len(g) == 1]


def flat_summary(result: dict, probe: ProbeDefinition) -> dict[str, float]:
    """`variant/metric` overall, `variant/metric/<grouping>/gap|ratio`, and `<variant>-vs-<baseline>/...` deltas."""
    out: dict[str, float] = {}
    for q, v in result["groupings"][ALL]["groups"][ALL].items():
        if q != "n":
            out[q] = v["value"]
    for gname, g in result["groupings"].items():
        for q, d in g["disparity"].items():
            out[f"{q}/{gname}/gap"] = d["gap"]
            out[f"{q}/{gname}/ratio"] = d["ratio"]
    for gname in [ALL, *_single(probe)]:
        for variant, metrics in result["groupings"][gname]["changes"].items():
            for metric, groups in metrics.items():
                for group, c in groups.items():
                    key = f"{variant}-vs-{probe.baseline}/{metric}" + ("" if gname == ALL else f"/{gname}={group}")
                    out[f"{key}/delta"] = c["delta"]
    return out


def findings(result: dict, probe: ProbeDefinition, max_items: int = 4) -> list[str]:
    """A few plain sentences about the largest disparities and the largest change between label sets."""
    sents = []
    gaps = []
    for gname in _single(probe):
        for q, d in result["groupings"][gname]["disparity"].items():
            gaps.append((d["gap"], gname, q, d))
    flagged = sorted([x for x in gaps if "/flagged:" in x[2] and x[0] > 0], key=lambda x: -x[0])
    if not flagged and any("/flagged:" in x[2] for x in gaps):
        sents.append("No group's flagged-label rate differs from another's across any single attribute.")
    acc = sorted([x for x in gaps if x[2].endswith("accuracy")], key=lambda x: -x[0])
    groups = lambda gname: result["groupings"][gname]["groups"]  # noqa: E731
    for gap, gname, q, d in flagged[: max_items - 2]:
        variant, metric = q.split("/", 1)
        what = "a flagged label" if metric == "flagged:any" else f"a '{metric.split(':', 1)[1]}' label"
        hi, lo = groups(gname)[d["max_group"]][q], groups(gname)[d["min_group"]][q]
        ratio = f"{d['ratio']:.1f}x" if np.isfinite(d["ratio"]) else "none in the lower group"
        sents.append(
            f"With the '{variant}' label set, images with {gname}={d['max_group']} got {what} {_pct(hi['value'])} of the time "
            f"vs {_pct(lo['value'])} for {gname}={d['min_group']}: a gap of {100 * gap:.1f} points "
            f"(95% CI {100 * d['gap_ci'][0]:.1f} to {100 * d['gap_ci'][1]:.1f}; ratio {ratio})."
        )
    if acc:
        gap, gname, q, d = acc[0]
        hi, lo = groups(gname)[d["max_group"]][q], groups(gname)[d["min_group"]][q]
        sents.append(
            f"Accuracy ({q}) differs most across {gname}: {_pct(hi['value'])} for {d['max_group']} vs {_pct(lo['value'])} "
            f"for {d['min_group']} (gap {100 * gap:.1f} points, CI {100 * d['gap_ci'][0]:.1f} to {100 * d['gap_ci'][1]:.1f})."
        )
    moves = []
    for gname in _single(probe):
        for variant, metrics in result["groupings"][gname]["changes"].items():
            c = metrics.get("flagged:any")
            for group, x in (c or {}).items():
                moves.append((abs(x["delta"]), gname, group, variant, x))
    if moves:
        _, gname, group, variant, x = max(moves, key=lambda m: m[0])
        added = sorted(set(probe.variant(variant).labels) - set(probe.variant(probe.baseline).labels))
        how = f"adding {', '.join(repr(a) for a in added)}" if added else f"the '{variant}' label set"
        sents.append(
            f"The largest change between label sets: {how} moved the flagged rate of {gname}={group} from "
            f"{_pct(x['before'])} to {_pct(x['after'])} ({100 * x['delta']:+.1f} points, CI {100 * x['ci'][0]:+.1f} "
            f"to {100 * x['ci'][1]:+.1f})."
        )
    return sents


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")


def plot_grouping(result: dict, gname: str, quantities: list[str], path: Path, max_groups: int = 24) -> Path | None:
    """One panel per metric (flagged categories, accuracy), bars per group, one colour per label set, CI whiskers."""
    g = result["groupings"][gname]["groups"]
    names = list(g)
    if len(names) > max_groups:
        return None
    metrics = list(dict.fromkeys(q.split("/", 1)[1] for q in quantities))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(max(4, 0.6 * len(names) + 2) * len(metrics) / 1.5, 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        series = [q for q in quantities if q.split("/", 1)[1] == metric]
        width = 0.8 / len(series)
        for j, q in enumerate(series):
            vals = np.array([g[n][q]["value"] if q in g[n] else np.nan for n in names], dtype=float)
            lo = np.array([g[n][q]["ci"][0] if q in g[n] else np.nan for n in names], dtype=float)
            hi = np.array([g[n][q]["ci"][1] if q in g[n] else np.nan for n in names], dtype=float)
            err = np.nan_to_num(np.vstack([vals - lo, hi - vals]).clip(min=0))
            x = np.arange(len(names)) + (j - (len(series) - 1) / 2) * width
            ax.bar(x, vals, width, yerr=err, capsize=2, label=q.split("/", 1)[0])
        ax.set_xticks(range(len(names)), names, rotation=45 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
        ax.set_ylim(0, 1)
        ax.set_title(metric, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"by {gname} (95% bootstrap CI)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_all(result: dict, probe: ProbeDefinition, plots_dir: Path) -> list[Path]:
    """A PNG per grouping (attributes and intersections with few enough groups)."""
    out = []
    for gname in result["groupings"]:
        if gname == ALL:
            continue
        p = plot_grouping(result, gname, result["quantities"], plots_dir / f"{_slug(probe.name)}__{_slug(gname)}.png")
        if p is not None:
            out.append(p)
    return out


def _cell(v: dict | None) -> Markup:
    if v is None or v.get("value") is None:
        return Markup("")
    return Markup(f"{v['value']:.3f} <small>[{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]</small>")  # numbers only: safe


def render_html(
    result: dict, probe: ProbeDefinition, text: list[str], gate: tuple[bool, str], plots: list[Path], root: Path
) -> str:
    """The bias page: findings, gate verdict, per-grouping tables (value [95% CI]) and plots (templates/bias.html)."""
    from components.report.html import render

    return render(
        "bias.html", title=f"bias probe: {probe.name}", probe=probe, findings=text, gate=gate,
        groupings=list(result["groupings"].items()), quantities=result["quantities"], ci=_cell,
        plots=[str(p.relative_to(root)) for p in plots],
    )  # fmt: skip
