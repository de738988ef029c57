"""What a capacity search prints: the table of capacities per N, what they advise, where it is stored."""

from __future__ import annotations

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
        if r.get("non_monotone"):
            cap += "\n[yellow]not monotone[/yellow]"
        lat = "-" if r["latency_at_capacity_ms"] is None else f"{r['latency_at_capacity_ms']:.3g} ms"
        high = "-" if r["latency_ci_high_at_capacity_ms"] is None else f"{r['latency_ci_high_at_capacity_ms']:.3g} ms"
        table.add_row(plural(r["n"], r["dimension"][:-1]), cap, bracket, lat, high, str(r["steps"]),
                      r["limited_by"] or "")
    return table


def capacity_lines(rows: Sequence[Mapping[str, Any]], answer: Mapping[str, Any] | None, load_per_s: float | None,
                   dimension: str, unit: str) -> list[str]:
    """Return what the capacities advise: the searches' notes, each step to more N and what it adds, a load's need."""
    from orchestrator.analysis.capacity_advice import fitted_peak, scale_steps

    met = [r for r in rows if r["capacity_per_s"]]
    searched = [r for r in rows if r["capacity_per_s"] or r["bracket_high_per_s"]]  # an N that met no rate: 0
    slo = rows[0]["slo"] if rows else ""
    lines = [f"At {plural(r['n'], dimension[:-1])}: {r['note']}" for r in rows if r.get("note")]
    steps = scale_steps([r["n"] for r in searched], [r["capacity_per_s"] or 0.0 for r in searched],
                        [r["bracket_high_per_s"] for r in searched]) if met else ()
    peak = fitted_peak([r["n"] for r in met], [r["capacity_per_s"] for r in met])
    highs = {r["n"]: r["bracket_high_per_s"] for r in searched}
    for step in steps:
        at = quantity(step.lower_per_s, unit)
        if not step.lower_per_s:
            continue  # nothing to scale up from
        if not step.upper_per_s:
            lines.append(f"At {slo}: {plural(step.upper_n, dimension[:-1])} met it at no rate tried (not even "
                         f"{quantity(highs[step.upper_n], unit)}) while {plural(step.lower_n, dimension[:-1])} "
                         f"carried {at}: going from {step.lower_n} to {step.upper_n} adds no capacity at this SLO.")
            continue
        if step.change == "adds":
            lines.append(f"At {slo}: scale up from {step.lower_n} to {step.upper_n} {dimension} above {at}; scale "
                         f"back down below {at} (capacities measured, not assumed).")
            continue
        than = "less than" if step.change == "less" else "no more than"
        within = "" if step.change == "less" else " within the search's brackets"
        fitted = f"; the USL fit puts the peak at N* {peak:.1f}" if peak is not None else ""
        lines.append(f"At {slo}: {plural(step.upper_n, dimension[:-1])} carry {than} "
                     f"{plural(step.lower_n, dimension[:-1])}{within} ({quantity(step.upper_per_s, unit)} against "
                     f"{at}): going from {step.lower_n} to {step.upper_n} adds no capacity at this SLO{fitted}.")
    if load_per_s is None:
        return lines
    load = f"A load of {quantity(load_per_s, unit)}"
    if answer is None:
        lines.append(f"{load}: no point met {slo}, so no capacity over {dimension} can be fitted.")
    elif answer["n"] is None and answer.get("stops_at") is not None:
        lines.append(f"{load} cannot be met at {slo}: capacity stops rising after "
                     f"{plural(answer['stops_at'], dimension[:-1])} and no {dimension[:-1]} count measured carries it.")
    elif answer["n"] is None:
        lines.append(f"{load} {answer['note']} (capacity over {dimension} fitted by {answer['model']}).")
    else:
        low, high = answer["n_low"], answer["n_high"]
        interval = (f"{low} or more" if high is None else f"{low} at either end" if low == high
                    else f"{low}–{high}")
        fitted = (f"fitted by {answer['model']}" if answer.get("stops_at") is None else
                  f"fitted by {answer['model']} only up to {plural(answer['stops_at'], dimension[:-1])}, "
                  "where it stops rising")
        lines.append(f"{load} needs {plural(answer['n'], dimension[:-1])} (the search brackets give {interval}) at "
                     f"{slo}; capacity over {dimension} {fitted}.")
    return lines
