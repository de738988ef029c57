"""``topobench run``: validate, connect, probe, plan, execute, summarize."""

from __future__ import annotations

import sys
from dataclasses import asdict, replace

from rich.console import Console
from rich.table import Table

from cluster.connection import ray_session
from cluster.probe import probe_nodes
from orchestrator.env_command import print_warnings
from orchestrator.format import percent, quantity, si
from orchestrator.planner import plan_trials
from orchestrator.progress import trial_progress
from orchestrator.request import RunRequest
from orchestrator.resources import DEFAULT_THRESHOLDS, FlagThresholds, flag_notes
from orchestrator.runner import RunOutcome, execute
from orchestrator.store import RunStore, check_writable, new_run_id
from orchestrator.targets import check_targets, parse_targets, target_columns, targets_table

# Below this many samples a percentile bootstrap CI of the median is little more than the
# sample's min-max, so the table shows none.
MIN_SAMPLES_FOR_CI = 6


def _ci_text(row: dict) -> str:
    """Return the CI relative to the median ("-1.2%/+3.4%"); "-" when there is none or too few samples."""
    if row["ci_low"] is None or not row["median"] or row["n"] < MIN_SAMPLES_FOR_CI:
        return "-"
    median = abs(row["median"])
    low, high = 100 * (row["ci_low"] - row["median"]) / median, 100 * (row["ci_high"] - row["median"]) / median
    return f"{low:+.1f}%/{high:+.1f}%"


def summary_table(outcome: RunOutcome, title: str = "topobench run") -> Table:
    """Return the end-of-run table: one line per trial and metric, with its flags.

    ``median`` and ``aggregate`` carry the metric's unit; the CI is the bootstrap 95% CI
    of the median as a ± share of it; ``overlap`` and ``CPU%`` are on the trial's first row.
    """
    table = Table(title=f"{title} {outcome.run_id} — {outcome.status}", title_justify="left")
    for name, justify in (("workload", "left"), ("metric", "left"), ("workers", "right"), ("median", "right"),
                          ("95% CI", "right"), ("CV", "right"), ("aggregate", "right"),
                          ("overlap", "right"), ("CPU%", "right"), ("flags", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for result in outcome.results:
        for i, row in enumerate(result.rows):
            name = row["workload"] if i == 0 else ""
            if row["status"] != "ok":
                table.add_row(name, "[red]failed[/red]", str(row["workers"]), "", "", "", "", "", "",
                              row["error"] or "")
                continue
            first = i == 0
            cpu = row.get("pinned_cpu_percent")
            flags = ", ".join(row.get("flags") or ())
            table.add_row(
                name, row["metric"], str(row["workers"]) if first else "", quantity(row["median"], row["unit"]),
                _ci_text(row), percent(row["cv"]),
                quantity(row.get("aggregate_throughput"), row["unit"]) if row.get("aggregate_throughput") else "",
                percent(row.get("overlap")) if first else "",
                "" if cpu is None or not first else f"{cpu:.0f}",
                f"[yellow]{flags}[/yellow]" if flags else "")
        table.add_section()
    return table


def summary_notes(outcome: RunOutcome, thresholds: FlagThresholds = DEFAULT_THRESHOLDS) -> list[str]:
    """Return one line per trial on how measuring stopped and its peak RSS, then one per flag raised."""
    lines = []
    for result in outcome.results:
        primary = next((r for r in result.rows if r["status"] == "ok"), None)
        if primary is None:
            continue
        workers = f"{primary['workers']} worker{'s' if primary['workers'] != 1 else ''}"
        name = f"{primary['workload']} ({workers}, trial {primary['trial_id']})"
        reason = primary.get("stop_reason")
        rss = primary.get("peak_rss_bytes")
        text = f"{name}: {primary['n']} samples in {primary.get('measure_s') or 0:.1f} s"
        if reason == "stable":
            text += " — stopped: stable (median's 95% CI within --rel-ci)"
        elif reason == "max-time":
            half = None if primary["ci_low"] is None else (primary["ci_high"] - primary["ci_low"]) / 2
            width = "" if half is None or not primary["median"] else f", CI ±{100 * half / abs(primary['median']):.1f}%"
            text += f" — stopped: max-time reached before the CI narrowed{width}"
        if rss is not None:
            text += f"; peak RSS {si(rss)}B"
        lines.append(text)
        for row in result.rows:  # noisy/underused describe the trial: once, on the primary row
            own = row if row is primary else {**row, "flags": [f for f in row.get("flags") or () if f == "unstable"]}
            lines.extend(f"  {row['metric']}: {note}" for note in flag_notes(own, thresholds))
    return lines


def apply_targets(targets: tuple[str, ...], workloads: tuple[str, ...], rows: list[dict],
                  store: RunStore, console: Console) -> int:
    """Check ``targets`` on the trial medians in ``rows``; print, store and count the misses.

    The ``target`` column of each checked metric's trials row records which targets passed
    (the whole trials file is rewritten). Returns how many targets were missed.
    """
    checked = check_targets(parse_targets(targets, workloads=workloads), rows)
    console.print(targets_table(checked))
    columns = target_columns(checked)
    store.write_trials([{**r, "target": columns.get((r["trial_id"], r["metric"]))} for r in rows])
    return sum(1 for c in checked if not c.passed)


def execute_run(request: RunRequest, address: str | None, console: Console, command: str = "") -> RunOutcome:
    """Run ``request`` on the cluster at ``address`` (None: embedded Ray); store and summarize.

    Everything a user can get wrong is checked before the first file is written.
    """
    results = check_writable(request.results)
    with ray_session(address, num_cpus=None):
        nodes = probe_nodes()
        trials = plan_trials(request, nodes)
        print_warnings(Console(stderr=True), nodes)
        run_id = new_run_id()
        store = RunStore(results, run_id)
        settings = asdict(request)
        describe = lambda i, t: f"{t.workload} · {len(t.slots)} workers · trial {i + 1}/{len(trials)}"
        with trial_progress(len(trials), describe) as on_trial:
            outcome = execute(run_id, command or " ".join(sys.argv), request.to_json(), settings,
                              trials, nodes, store, on_trial)
    console.print(summary_table(outcome))
    for line in summary_notes(outcome, FlagThresholds(max_cv=request.max_cv)):
        console.print(line, highlight=False)
    if request.targets:
        rows = [r for result in outcome.results for r in result.rows]
        outcome = replace(outcome, targets_missed=apply_targets(request.targets, request.workloads, rows,
                                                                store, console))
    console.print(f"Results: {results} (run_id={run_id}); query with "
                  f"`topobench query \"SELECT * FROM trials WHERE run_id='{run_id}'\"`")
    return outcome
