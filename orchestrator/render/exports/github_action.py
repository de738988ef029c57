"""github-action-benchmark's custom tools: a JSON list of ``{name, unit, value, range, extra}``.

The action takes one direction per file, so there are two: ``customBiggerIsBetter`` (metrics
where higher is better) and ``customSmallerIsBetter``; descriptive metrics are in neither.
``range`` is "± half the CI's width" where there is a CI.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from orchestrator.analysis.series import Benchmark

TOOLS = {"higher": "customBiggerIsBetter", "lower": "customSmallerIsBetter"}


def serialize(benchmarks: Sequence[Benchmark]) -> dict[str, str]:
    """Return {tool name: JSON list} for both directions."""
    out: dict[str, list[dict]] = {tool: [] for tool in TOOLS.values()}
    for b in benchmarks:
        if b.key.better is None:
            continue
        entry = {"name": b.name, "unit": b.key.unit, "value": b.value,
                 "extra": f"{len(b.run_ids)} run(s): {', '.join(b.run_ids)}; series {b.key.id}"}
        if b.ci_low is not None and b.ci_high is not None:
            entry["range"] = f"± {(b.ci_high - b.ci_low) / 2:.6g}"
            entry["extra"] += f"; 95% CI {b.ci_low:.6g}–{b.ci_high:.6g}"
        out[TOOLS[b.key.better]].append(entry)
    return {tool: json.dumps(entries, indent=1) for tool, entries in out.items()}
