"""The sentences printed after a run: how each trial stopped, what each flag means, warnings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console

from cluster.environment import environment_warnings
from orchestrator.analysis.flags import DEFAULT_THRESHOLDS, FlagThresholds
from orchestrator.render.numbers import si
from orchestrator.render.rows import shown_rows
from workloads.units import plural


def flag_notes(row: Mapping[str, Any], thresholds: FlagThresholds = DEFAULT_THRESHOLDS) -> list[str]:
    """Return one sentence per flag of a ``trials`` row, with the figures that raised it."""
    notes = []
    flags = row.get("flags") or ()
    if "unstable" in flags:
        more = ("a larger --max-time" if row.get("stop_reason") == "max-time"
                else "more --repetitions or --until-stable")
        notes.append(f"unstable: CV {100 * row['cv']:.1f}% of {row['metric']} is above "
                     f"{100 * thresholds.max_cv:.0f}%; rerun with {more}")
    if "desynchronized" in flags:
        notes.append(f"desynchronized: only {100 * row['overlap']:.1f}% of the least aligned worker's "
                     f"measuring time ran while all workers ran (below {100 * thresholds.min_overlap:.0f}%): "
                     "samples of equal work started together but took unequal times (other load, "
                     "unequal cores) or started late; the slowest worker lowers the aggregate")
    if "noisy" in flags:
        notes.append(f"noisy: a CPU outside the plan was {row['busiest_other_cpu_percent']:.0f}% busy "
                     f"(above {thresholds.noisy_cpu_percent:.0f}%); other load shared the node")
    if "underused" in flags:
        notes.append(f"underused: a planned CPU was only {row['idlest_pinned_cpu_percent']:.0f}% busy "
                     f"(below {thresholds.underused_cpu_percent:.0f}%); the workload waited or was not pinned")
    if "partial" in flags:
        notes.append(f"partial: {row.get('invocations')} of {row.get('invocations_planned')} invocations were "
                     "measured before the run was interrupted; the figure and CI are over those")
    if "window_missed" in flags:
        notes.append("window_missed: some rounds started late (a worker was still busy at the round's instant) "
                     "and re-running them in wider windows did not make up the count, so the figure is over fewer "
                     "rounds than asked; they are stored as not measured (warmup, repetition >= 0)")
    if "generator_bound" in flags:
        notes.append("generator_bound: the open-loop generator's send-lag p99 is over 10% of the latency p50, "
                     "so part of each latency is the client's own lateness (compare send_lag_p99_ms with "
                     "latency_p50_ms); offer a lower rate or give the worker a CPU of its own. A capacity "
                     "step judges the generator against its SLO instead")
    return notes


def _workload_flag_notes(row: Mapping[str, Any]) -> list[str]:
    """Return the sentences of the flags a workload raised (its ``sample_flags``)."""
    from workloads.registry import get_workload

    declared = get_workload(row["workload"]).sample_flags
    return [f"{flag}: {declared[flag]}" for flag in row.get("flags") or () if flag in declared]


def summary_notes(rows: Sequence[Mapping[str, Any]], thresholds: FlagThresholds = DEFAULT_THRESHOLDS) -> list[str]:
    """Return one line per trial on how measuring stopped and its peak RSS, then one per flag raised."""
    by_trial: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_trial.setdefault(row["trial_id"], []).append(row)
    lines = []
    for trial_rows in by_trial.values():
        primary = next((r for r in trial_rows if r["status"] == "ok"), None)
        if primary is None:
            continue
        name = f"{primary['workload']} ({plural(primary['workers'], 'worker')}, trial {primary['trial_id']})"
        reason = primary.get("stop_reason")
        k = primary.get("invocations") or 1
        text = f"{name}: {primary['n']} samples" + (f" in {k} invocations" if k > 1 else "")
        text += f", {primary.get('measure_s') or 0:.1f} s of measuring"
        if reason == "stable" and k > 1:
            text += " — every invocation stopped stable (its rounds' 95% CI within --rel-ci)"
        elif reason == "stable":
            text += " — stopped: stable (median's 95% CI within --rel-ci)"
        elif reason == "max-time":
            half = None if primary["ci_low"] is None else (primary["ci_high"] - primary["ci_low"]) / 2
            width = "" if half is None or not primary["median"] else f", CI ±{100 * half / abs(primary['median']):.1f}%"
            text += f" — stopped: max-time reached before the CI narrowed{width}"
        if primary.get("peak_rss_bytes") is not None:
            text += f"; peak RSS {si(primary['peak_rss_bytes'])}B"
        lines.append(text)
        if primary.get("sd_between_invocations") is not None:
            lines.append(f"  {components_text(primary)}")
        # Trial-wide flags describe the trial: once, on the primary row; other metrics' CVs on one line.
        lines.extend(f"  {primary['metric']}: {note}" for note in flag_notes(primary, thresholds))
        shaky = [r for r in shown_rows(trial_rows, all_metrics=True)
                 if r is not primary and "unstable" in (r.get("flags") or ())]
        if shaky:
            listed = ", ".join(f"{r['metric']} {100 * r['cv']:.0f}%" for r in shaky)
            lines.append(f"  unstable (CV over rounds above {100 * thresholds.max_cv:.0f}%): {listed}")
        lines.extend(f"  {note}" for note in _workload_flag_notes(primary))
    return lines


def components_text(row: Mapping[str, Any]) -> str:
    """Return a trial's variance components and the cheapest plan for the --rel-ci precision, as one sentence.

    e.g. "spread between invocations 3.1%, between rounds 0.8% (relative sd); a 95% CI of ±2%
    takes 7 invocations x 2 rounds (about 25 s at 3.1 s per invocation and 0.11 s per round)".
    """
    text = (f"spread between invocations {100 * row['sd_between_invocations']:.1f}%, between rounds "
            f"{100 * (row.get('sd_between_rounds') or 0):.1f}% (relative sd)")
    if row.get("plan_invocations"):
        text += (f"; a 95% CI within the --rel-ci target takes {row['plan_invocations']} invocations × "
                 f"{row['plan_rounds']} rounds (about {row['plan_cost_s']:.0f} s at "
                 f"{row['invocation_cost_s']:.1f} s per invocation and {row['round_cost_s']:.2f} s per round)")
    return text


def print_warnings(console: Console, envs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Print the noise warnings for nodes' environment facts in yellow; return them."""
    warnings = environment_warnings([dict(e) for e in envs])
    for text in warnings:
        console.print(f"[yellow]warning:[/yellow] {text}", highlight=False)
    return warnings
