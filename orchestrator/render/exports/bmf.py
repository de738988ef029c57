"""Bencher Metric Format (BMF): ``{benchmark: {measure: {value, lower_value, upper_value}}}``.

The value is the median over the exported runs; lower/upper are its CI (one run: the trial's
over rounds or invocations; 3+ runs: over runs), left out where there is none. The measure is
the metric's name as a slug.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from orchestrator.analysis.series import Benchmark


def slug(text: str) -> str:
    """Return ``text`` as a Bencher slug: lower case, letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "value"


def serialize(benchmarks: Sequence[Benchmark]) -> str:
    """Return the BMF JSON of ``benchmarks``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for b in benchmarks:
        name = b.name[: -len(b.key.metric)].strip()
        entry = {"value": b.value}
        if b.ci_low is not None and b.ci_high is not None:
            entry.update(lower_value=b.ci_low, upper_value=b.ci_high)
        out.setdefault(name, {})[slug(b.key.metric)] = entry
    return json.dumps(out, indent=1)
