"""Which trials rows a summary shows: each trial's headline, or every metric without repeats."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def shown_rows(rows: Sequence[Mapping[str, Any]], all_metrics: bool) -> list[Mapping[str, Any]]:
    """Return the trials rows the summary shows: each trial's headline (its first row), or every metric.

    With every metric, a ``*_best_*`` metric is left out where its median equals its mean
    counterpart's (one pass per sample makes them the same number); nothing leaves the dataset.
    """
    if not all_metrics:
        seen: set[str] = set()
        return [r for r in rows if not (r["trial_id"] in seen or seen.add(r["trial_id"]))]
    median = {(r["trial_id"], r["metric"]): r.get("median") for r in rows}
    out = []
    for r in rows:
        twin = median.get((r["trial_id"], r["metric"].replace("_best_", "_", 1)), None) if "_best_" in r["metric"] \
            else None
        if twin is not None and r.get("median") is not None and math.isclose(twin, r["median"], rel_tol=1e-9):
            continue
        out.append(r)
    return out
