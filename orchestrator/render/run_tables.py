"""The tables ``run`` and ``sweep`` print: trial summary, targets, scaling series, sweep plan."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.table import Table

from cluster.cpulist import format_cpulist
from cluster.nodes import NodeInfo
from orchestrator.analysis.capacity import CapacityGoal
from orchestrator.analysis.invocations import MIN_INVOCATIONS_FOR_CI
from orchestrator.analysis.scaling import amdahl_name, speedup_name
from orchestrator.analysis.scaling_series import SeriesAnalysis
from orchestrator.analysis.stats import MIN_UNITS_FOR_CI
from orchestrator.analysis.targets import TargetResult
from orchestrator.records import Trial
from orchestrator.render.numbers import percent, quantity, si
from orchestrator.render.rows import shown_rows
from orchestrator.settings import ROUND_WINDOW, Sampling
from workloads.params import params_text


def _ci_text(row: Mapping[str, Any]) -> str:
    """Return the CI relative to the median ("-1.2%/+3.4%"), marked "rounds" when it leaves invocations
    out (one invocation); why there is none otherwise ("K<3: no 95% CI", "n<6: no 95% CI")."""
    invocations = row.get("invocations") or 1  # a row written before invocations: one
    if row.get("ci_low") is None and 1 < invocations < MIN_INVOCATIONS_FOR_CI:
        return f"K<{MIN_INVOCATIONS_FOR_CI}: no 95% CI"
    if row.get("ci_low") is None and invocations == 1 and (row.get("n") or 0) < MIN_UNITS_FOR_CI:
        return f"n<{MIN_UNITS_FOR_CI}: no 95% CI"
    if row.get("ci_low") is None or not row["median"]:
        return "-"
    median = abs(row["median"])
    low, high = 100 * (row["ci_low"] - row["median"]) / median, 100 * (row["ci_high"] - row["median"]) / median
    rounds_only = "" if "invocations" in (row.get("ci_method") or "") else " rounds"
    return f"{low:+.1f}%/{high:+.1f}%{rounds_only}"


def summary_table(rows: Sequence[Mapping[str, Any]], title: str, all_metrics: bool = False) -> Table:
    """Return the end-of-run table: each trial's headline metric (``all_metrics``: every metric), with flags.

    ``median`` (the per-worker figure: median over rounds of the round's mean over workers)
    and ``aggregate`` carry the metric's unit; the CI is the 95% CI of the figure over
    invocations (one invocation: over rounds, marked so) as a ± share of it; ``K×R`` counts
    invocations and rounds; ``overlap`` and ``CPU%`` are on the trial's first row.
    """
    table = Table(title=title, title_justify="left")
    for name, justify in (("workload", "left"), ("metric", "left"), ("workers", "right"), ("median", "right"),
                          ("95% CI", "right"), ("K×R", "right"), ("CV", "right"), ("aggregate", "right"),
                          ("overlap", "right"), ("CPU%", "right"), ("flags", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    previous = None
    for row in shown_rows(rows, all_metrics):
        first = row["trial_id"] != previous
        if first and previous is not None and all_metrics:
            table.add_section()
        previous = row["trial_id"]
        name = row["workload"] if first else ""
        if row["status"] != "ok":
            table.add_row(name, "[red]failed[/red]", str(row["workers"]), "", "", "", "", "", "", "",
                          row["error"] or "")
            continue
        cpu = row.get("pinned_cpu_percent")
        flags = ", ".join(row.get("flags") or ())
        table.add_row(
            name, row["metric"], str(row["workers"]) if first else "", quantity(row["median"], row["unit"]),
            _ci_text(row), _counts_text(row), percent(row["cv"]),
            quantity(row.get("aggregate_throughput"), row["unit"]) if row.get("aggregate_throughput") else "",
            percent(row.get("overlap")) if first else "",
            "" if cpu is None or not first else f"{cpu:.0f}",
            f"[yellow]{flags}[/yellow]" if flags else "")
    if not all_metrics and len({r["trial_id"] for r in rows}) < len(rows):
        table.caption = "Each trial's headline metric; every metric: --metrics all, or `topobench query`."
        table.caption_justify = "left"
    return table


def _counts_text(row: Mapping[str, Any]) -> str:
    """Return invocations x rounds per invocation ("5×3"), "3/5×3" when an interrupt left fewer than asked."""
    k, n = row.get("invocations") or 1, row.get("n") or 0
    per = f"{n // k}" if n % k == 0 else f"~{n / k:.1f}"
    planned = row.get("invocations_planned")
    return f"{k}/{planned}×{per}" if planned and planned > k else f"{k}×{per}"


def targets_table(results: Iterable[TargetResult]) -> Table:
    """Return a table with one line per target and trial: figure, target, PASS/FAIL."""
    table = Table(title="targets")
    for name, justify in (("target", "left"), ("workers", "right"), ("params", "left"),
                          ("measured", "right"), ("unit", "left"), ("result", "left")):
        table.add_column(name, justify=justify)
    for r in results:
        verdict = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
        median = "not measured" if r.measured is None else si(r.measured)
        table.add_row(str(r.target), "" if r.workers is None else str(r.workers),
                      params_text(json.loads(r.params)) if r.params else "", median, r.unit or "", verdict)
    return table


def _range(low: float | None, high: float | None, fmt: str = ".3g") -> str:
    return "-" if low is None or high is None else f"{low:{fmt}}–{high:{fmt}}"


def _fit_caption(a: SeriesAnalysis) -> str:
    lines = []
    if a.amdahl:
        lo, hi = a.amdahl.serial_fraction_ci
        lines.append(f"Amdahl {amdahl_name(a.mode)} {a.amdahl.serial_fraction:.3g} (95% CI {lo:.3g}–{hi:.3g}), "
                     f"rmse {si(a.amdahl.rmse)}, fitted on {a.amdahl.scale} X")
    if a.usl:
        u = a.usl
        if u.peak_n is not None and a.rows and u.peak_n < min(r.n for r in a.rows):
            peak = f", no peak N* claimed (the fitted {u.peak_n:.1f} lies below every N measured)"
        elif u.peak_n is not None:
            peak = f", peak N* {u.peak_n:.1f} (95% CI {_range(*(u.peak_n_ci or (None, None)), '.1f')})"
        else:
            peak = ", no peak N* (κ's CI includes 0)"
        lines.append(f"USL σ {u.sigma:.3g} ({u.sigma_ci[0]:.3g}–{u.sigma_ci[1]:.3g}), κ {u.kappa:.3g} "
                     f"({u.kappa_ci[0]:.3g}–{u.kappa_ci[1]:.3g}){peak}, rmse {si(u.rmse)}")
    if a.fit_note:
        lines.append(a.fit_note)
    lines.append(f"verdict: {a.verdict}")
    return "\n".join(lines)


def scaling_tables(analyses: Iterable[SeriesAnalysis]) -> list[Table]:
    """Return one table per analyzed series (N, throughput, speedup, efficiency, fits)."""
    tables = []
    for a in analyses:
        title = f"scaling of {a.workload} over {a.dimension} ({a.series}; {a.mode}) {params_text(json.loads(a.params))}"
        table = Table(title=title.strip(), caption=_fit_caption(a))
        speedup = speedup_name(a.mode)
        for name in ("N", "rounds", "median", "95% CI", speedup, "95% CI ", "efficiency", "95% CI  ", "Karp-Flatt",
                     "unit"):
            table.add_column(name, justify="left" if name == "unit" else "right")
        for r, rounds in zip(a.rows, a.samples):
            ci = "-" if r.throughput_ci_low is None else f"{si(r.throughput_ci_low)}– {si(r.throughput_ci_high)}"
            kf = "-" if r.karp_flatt is None else f"{r.karp_flatt:.3f}"
            eff_ci = ("-" if r.efficiency_ci_low is None
                      else f"{percent(r.efficiency_ci_low)}–{percent(r.efficiency_ci_high)}")
            table.add_row(str(r.n), str(rounds), si(r.throughput_median), ci, f"{r.speedup:.2f}",
                          _range(r.speedup_ci_low, r.speedup_ci_high, ".2f"), percent(r.efficiency), eff_ci, kf, a.unit)
        tables.append(table)
    return tables


def duration_text(trials: int, sampling: Sampling) -> str:
    """Return how long ``trials`` trials take at least, as words ("at least 2 min 30 s")."""
    # Per invocation: about 1 s of actor setup, calibration (its samples grow to min_time; the
    # last two reach it: about 3 min_time), then every round's window lasts at least 1.25 min_time + 5 ms.
    window_s = ROUND_WINDOW.ns(sampling.min_time_s) / 1e9
    per_trial = sampling.invocations * (1.0 + 3 * sampling.min_time_s + (sampling.warmup + sampling.repetitions) * window_s)
    low = trials * per_trial
    text = f"at least {format_seconds(low)}"
    if sampling.until_stable:
        text += f", at most about {format_seconds(low + trials * sampling.max_time_s)} (--until-stable)"
    return text


def format_seconds(seconds: float) -> str:
    """Return a duration as "45 s", "2 min 30 s" or "3 h 05 min"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"


def plan_table(trials: Sequence[Trial], nodes: Sequence[NodeInfo], sampling: Sampling) -> Table:
    """Return the dry-run table: one line per trial with its CPU plan on each node, and how long it takes."""
    names = {n.node_id: f"{n.hostname}:{n.node_id[:6]}{'(head)' if n.is_head else ''}" for n in nodes}
    table = Table(title=f"sweep plan: {len(trials)} trials, {duration_text(len(trials), sampling)}")
    for name in ("#", "trial_id", "params", "nodes", "workers", "placement", "CPUs per node (one set per worker)"):
        table.add_column(name, justify="right" if name in ("#", "nodes", "workers") else "left",
                         no_wrap=name == "trial_id")
    for i, t in enumerate(trials, 1):
        per_node: dict[str, list[str]] = {}
        for s in t.slots:
            per_node.setdefault(s.node_id, []).append(format_cpulist(s.cpus) if s.pinned else "unpinned")
        plan = "\n".join(f"{names[node]} {' | '.join(sets)}" for node, sets in per_node.items())
        threads = f" x{t.shape.threads_per_worker}t" if t.shape.threads_per_worker > 1 else ""
        table.add_row(str(i), t.trial_id, params_text(t.params), str(len(t.node_ids)), f"{len(t.slots)}{threads}",
                      str(t.shape.placement), plan)
    return table


def dry_run_lines(capacity: CapacityGoal | None) -> list[str]:
    """Return what a dry run says beyond the plan: how a capacity sweep's searches start."""
    if capacity is None:
        return []
    start = (f"open loop at {capacity.start_per_s:g}/s, after the closed-loop trial shown" if capacity.start_per_s
             else "with the closed-loop trial shown")
    return [(f"A capacity sweep plans each step from the one before: each N's search starts {start} "
             "(the time shown is one such trial's); an answer far below the closed loop is probed above.")]
