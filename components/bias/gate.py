"""The bias gate: thresholds on flagged rates and group gaps, so a model that regresses on bias is not promoted."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import BiasConfig


@dataclass(frozen=True)
class BiasGate:
    """Passed, or the list of violations (each names variant, grouping, group and number)."""

    passed: bool
    violations: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(self.violations[:5]) + (f" (+{len(self.violations) - 5} more)" if len(self.violations) > 5 else "")


def _stat(entry: dict, key: str, ci_key: str, statistic: str) -> float:
    return entry[ci_key][0] if statistic == "ci_low" else entry[key]


def check_gate(result: dict, cfg: BiasConfig) -> BiasGate:
    """Compare every group's flagged rate and every grouping's gaps with the thresholds in `cfg`.

    Only groups with at least `cfg.min_group_size` images count (smaller ones are too noisy to gate on).
    With `gate_statistic: ci_low` a number fails only when the lower end of its interval exceeds the threshold.
    """
    bad = []
    for gname, g in result["groupings"].items():
        for group, row in g["groups"].items():
            if row["n"] < cfg.min_group_size:
                continue
            for q, v in row.items():
                if q == "n" or "/flagged:" not in q or v["value"] is None:
                    continue
                x = _stat(v, "value", "ci", cfg.gate_statistic)
                if x > cfg.max_flagged_rate:
                    bad.append(f"{q} = {x:.3f} for {gname}={group} exceeds max_flagged_rate {cfg.max_flagged_rate}")
        for q, d in g["disparity"].items():
            limit = cfg.max_accuracy_gap if q.endswith("accuracy") else cfg.max_flagged_gap
            x = _stat(d, "gap", "gap_ci", cfg.gate_statistic)
            if x > limit:
                name = "max_accuracy_gap" if q.endswith("accuracy") else "max_flagged_gap"
                bad.append(f"{q} gap across {gname} = {x:.3f} ({d['max_group']} vs {d['min_group']}) exceeds {name} {limit}")
    return BiasGate(not bad, bad)
