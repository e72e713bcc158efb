"""Growing data in a scheduled retrain: what the sources the champion never saw brought, and a gate on it.

The quarantine gate of validation looks at the whole dataset, so a new download that is almost all
quarantined hides under it (1,000 bad samples beside 20,000 good ones is 5%). Here the same
threshold (`data.validate.max_quarantine_rate`) applies to the new sources alone.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from flows.stages import Gate, StageOutput, _read_json, out_path, registry_url


def new_sources(params: Any) -> tuple[dict[str, dict], dict[str, Any] | None]:
    """(this ingest's per-source counts for sources absent from the champion's training record, the champion)."""
    from components.registry import load_registry

    champion = load_registry(registry_url(params))["champion"]
    seen = set(((champion or {}).get("training") or {}).get("sources") or {})
    by_source = _read_json(out_path(params, "ingest", "summary.json")).get("by_source", {})
    return {k: v for k, v in by_source.items() if k not in seen}, champion


def run_new_data(params: Any) -> StageOutput:
    """N new samples arrived, M were quarantined (reasons), K reached training; fails past the quarantine threshold."""
    new, champion = new_sources(params)
    if champion is None or not (champion.get("training") or {}).get("sources"):
        return StageOutput(summary={"skipped": "no champion with a per-source training record to compare with"})
    n = sum(v["input"] for v in new.values())
    m = sum(v["quarantined"] for v in new.values())
    reasons: Counter[str] = Counter()
    for v in new.values():
        reasons.update(v.get("by_reason", {}))
    why = ", ".join(f"{r}: {c}" for r, c in reasons.most_common()) or "none"
    line = (f"{n} new samples arrived in {len(new)} source(s) since champion v{champion['version']}, "
            f"{m} were quarantined ({why}), {n - m} reached training")  # fmt: skip
    limit = params.data.validate.max_quarantine_rate
    passed = not n or m / n <= limit
    reason = line if passed else f"{line}: over data.validate.max_quarantine_rate {limit}; see OUT/ingest/quarantine.parquet"
    summary = {"line": line, "new_sources": len(new), "new_samples": n, "quarantined": m, "reached_training": n - m}
    return StageOutput(summary=summary, gate=Gate(passed, reason))
