"""Service-level targets (``--target "memory.stream:triad_gbs>=20"``): parse and check.

A target names a workload, one of its metrics, an operator (>=, <=, >, <) and a value in
the metric's unit. It judges the per-worker median (the trial's headline figure) of that
metric in every ok trial of that workload; written ``aggregate:WORKLOAD:METRIC…`` it judges
the trial's aggregate throughput (all workers together, median over rounds) instead, which
only the workload's throughput metric has. A target that no trial measured fails.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from workloads.errors import UserError

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
}
_TARGET = re.compile(r"^\s*(?:(?P<figure>aggregate)\s*:\s*)?(?P<workload>[^:\s]+)\s*:\s*(?P<metric>[^<>=\s]+)"
                     r"\s*(?P<op>>=|<=|>|<)\s*(?P<value>\S+)\s*$")


@dataclass(frozen=True, slots=True)
class Target:
    """One service-level target: ``workload:metric OP value`` (value in the metric's unit)."""

    workload: str
    metric: str
    op: str
    value: float
    figure: str = "median"
    """median: the per-worker median; aggregate: all workers together (the throughput metric only)."""

    def __str__(self) -> str:
        prefix = "aggregate:" if self.figure == "aggregate" else ""
        return f"{prefix}{self.workload}:{self.metric}{self.op}{self.value:g}"

    def holds(self, measured: float) -> bool:
        """Return whether ``measured`` (the judged figure, in the metric's unit) meets the target."""
        return _OPS[self.op](measured, self.value)

    def measured(self, row: dict[str, Any]) -> float | None:
        """Return the figure of a ``trials`` row this target judges; None when the row has none."""
        if self.figure == "aggregate":
            value = row.get("aggregate_median")
            return row.get("aggregate_throughput") if value is None else value
        return row.get("median")


@dataclass(frozen=True, slots=True)
class TargetResult:
    """The outcome of one target on one trial (or on none, when no trial measured it)."""

    target: Target
    trial_id: str | None
    workers: int | None
    params: str | None
    measured: float | None
    """The figure judged (per-worker median, or aggregate); None when no ok trial measured it."""
    unit: str | None
    passed: bool


def parse_target(text: str, *, check_registry: bool = True) -> Target:
    """Parse ``"[aggregate:]workload:metric>=value"``; with ``check_registry`` the workload and metric must exist.

    Raises:
        UserError: the text is malformed, the value is not a number, or the workload or
            metric is unknown.
    """
    match = _TARGET.match(text)
    if not match:
        raise UserError(f"--target {text!r} is not WORKLOAD:METRIC OP VALUE; write it like "
                        "\"memory.stream:triad_gbs>=20\" (operators >=, <=, >, <).")
    try:
        value = float(match["value"])
    except ValueError:
        raise UserError(f"--target {text!r}: {match['value']!r} is not a number; give the value in the "
                        "metric's unit, e.g. \"net.http:p99_ms<=25\".") from None
    if not math.isfinite(value):
        raise UserError(f"--target {text!r}: {match['value']!r} is not a finite number; give the value in "
                        "the metric's unit, e.g. \"net.http:latency_p99_ms<=25\".")
    target = Target(match["workload"], match["metric"], match["op"], value, match["figure"] or "median")
    if check_registry:
        from workloads.registry import get_workload

        cls = get_workload(target.workload)
        names = [m.name for m in cls.all_metrics()]
        if target.metric not in names and target.metric.partition("@")[0] not in names:  # metric@point
            raise UserError(f"--target {text!r}: {target.workload} has no metric {target.metric!r}; "
                            f"choose one of: {', '.join(names)}.")
        if target.figure == "aggregate" and target.metric != cls.throughput.name:
            raise UserError(f"--target {text!r}: only {target.workload}'s throughput {cls.throughput.name} has an "
                            f"aggregate; drop 'aggregate:' or target {cls.throughput.name}.")
    return target


def parse_targets(texts: Iterable[str], workloads: Sequence[str] | None = None) -> tuple[Target, ...]:
    """Parse every ``--target``; when ``workloads`` is given each target's workload must be in it.

    Raises:
        UserError: a malformed target, or one for a workload the run does not include.
    """
    targets = tuple(parse_target(t) for t in texts)
    if workloads is not None:
        for t in targets:
            if t.workload not in workloads:
                raise UserError(f"--target {str(t)!r} names {t.workload}, which this run does not include; "
                                f"add it to the workloads or drop the target (run: {', '.join(workloads)}).")
    return targets


def check_targets(targets: Sequence[Target], trial_rows: Sequence[dict[str, Any]]) -> list[TargetResult]:
    """Check each target against the median of its metric in every ok trial row of its workload.

    ``trial_rows`` are ``trials`` rows (dicts with workload, metric, status, median, unit,
    trial_id, workers, params). A target that no ok row matches gives one failed result
    with median None.
    """
    results = []
    for target in targets:
        matched = [r for r in trial_rows if r.get("workload") == target.workload
                   and r.get("metric") == target.metric and r.get("status") == "ok"
                   and target.measured(r) is not None]
        if not matched:
            results.append(TargetResult(target, None, None, None, None, None, False))
            continue
        for row in matched:
            value = float(target.measured(row))
            results.append(TargetResult(target, row.get("trial_id"), row.get("workers"), row.get("params"),
                                        value, row.get("unit"), target.holds(value)))
    return results


def target_columns(results: Sequence[TargetResult]) -> dict[tuple[str, str], str]:
    """Return {(trial_id, metric): "target pass|fail; ..."} for the ``trials`` rows' ``target`` column."""
    out: dict[tuple[str, str], list[str]] = {}
    for r in results:
        if r.trial_id is not None:
            out.setdefault((r.trial_id, r.target.metric), []).append(f"{r.target} {'pass' if r.passed else 'fail'}")
    return {k: "; ".join(v) for k, v in out.items()}
