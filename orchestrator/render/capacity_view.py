"""What a capacity search prints: the table of capacities per N, what they advise, where it is stored."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from orchestrator.records import CapacityResult
from orchestrator.render.numbers import quantity, si
from workloads.units import plural


def print_capacity(console: Console, found: CapacityResult) -> None:
    """Print a finished capacity search: the table, the advice lines, and where every step is stored."""
    console.print(capacity_table(found.rows, found.unit))
    for line in capacity_lines(found.rows, found.answer, found.load_per_s, found.dimension,
                               found.unit):
        console.print(line, highlight=False)
    run_id = found.session.run_id
    console.print(f"Results: {found.session.results} (run_id={run_id}); every step is a trial: "
                  f"`topobench query \"SELECT * FROM capacity WHERE run_id='{run_id}'\"`")


def capacity_table(rows: Sequence[Mapping[str, Any]], unit: str) -> Table:
    """Return the capacity search's answer: one line per point; rates in ``unit`` (the workload's throughput)."""
    table = Table(title="capacity: the highest offered rate whose every SLO percentile's upper 95% bound met the SLO")
    for name in ("N", "capacity", "bracket", "latency at capacity", "upper bound", "steps", "limited by"):
        table.add_column(name, justify="left" if name == "limited by" else "right", overflow="fold")
    for r in rows:
        low, high = r["bracket_low_per_s"], r["bracket_high_per_s"]
        bracket = (f"{si(low).strip()} – {quantity(high, unit)}" if low and high else f">= {quantity(low, unit)}" if low
                   else f"< {quantity(high, unit)}" if high else "-")
        cap = quantity(r["capacity_per_s"], unit) if r["capacity_per_s"] else f"[red]{r['status']}[/red]"
        lat = "-" if r["latency_at_capacity_ms"] is None else f"{r['latency_at_capacity_ms']:.3g} ms"
        high = "-" if r["latency_ci_high_at_capacity_ms"] is None else f"{r['latency_ci_high_at_capacity_ms']:.3g} ms"
        table.add_row(plural(r["n"], r["dimension"][:-1]), cap, bracket, lat, high, str(r["steps"]),
                      r["limited_by"] or "")
    return table


def capacity_lines(rows: Sequence[Mapping[str, Any]], answer: Mapping[str, Any] | None, load_per_s: float | None,
                   dimension: str, unit: str) -> list[str]:
    """Return the scale-up and scale-down thresholds the capacities give, and what a load needs."""
    lines = []
    met = [r for r in rows if r["capacity_per_s"]]
    slo = rows[0]["slo"] if rows else ""
    for lower, upper in itertools.pairwise(met):
        at = quantity(lower["capacity_per_s"], unit)
        lines.append(f"At {slo}: scale up from {lower['n']} to {upper['n']} {dimension} above {at}; scale back down "
                     f"below {at} (capacities measured, not assumed).")
    if load_per_s is None:
        return lines
    load = f"A load of {quantity(load_per_s, unit)}"
    if answer is None:
        lines.append(f"{load}: no point met {slo}, so no capacity over {dimension} can be fitted.")
    elif answer["n"] is None:
        lines.append(f"{load} {answer['note']} (capacity over {dimension} fitted by {answer['model']}).")
    else:
        low, high = answer["n_low"], answer["n_high"]
        interval = (f"{low} or more" if high is None else f"{low} at either end" if low == high
                    else f"{low}–{high}")
        lines.append(f"{load} needs {plural(answer['n'], dimension[:-1])} (the search brackets give {interval}) at "
                     f"{slo}; capacity over {dimension} fitted by {answer['model']}.")
    return lines
