"""``topobench run``: validate, connect, probe, plan, execute, summarize."""

from __future__ import annotations

import sys
from dataclasses import asdict

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cluster.connection import ray_session
from cluster.probe import probe_nodes
from orchestrator.format import percent, si
from orchestrator.planner import plan_trials
from orchestrator.request import RunRequest
from orchestrator.runner import RunOutcome, execute
from orchestrator.store import RunStore, check_writable, new_run_id


def summary_table(outcome: RunOutcome) -> Table:
    """Return the end-of-run table: one line per trial and metric."""
    table = Table(title=f"topobench run {outcome.run_id} — {outcome.status}")
    for name, justify in (("workload", "left"), ("metric", "left"), ("workers", "right"),
                          ("median", "right"), ("95% CI", "right"), ("CV", "right"),
                          ("aggregate", "right"), ("overlap", "right"), ("unit", "left")):
        table.add_column(name, justify=justify)
    for result in outcome.results:
        for row in result.rows:
            if row["status"] != "ok":
                table.add_row(row["workload"], "[red]failed[/red]", str(row["workers"]), "", "", "",
                              "", "", row["error"] or "")
                continue
            ci = "-" if row["ci_low"] is None else f"{si(row['ci_low'])}– {si(row['ci_high'])}"
            table.add_row(row["workload"], row["metric"], str(row["workers"]), si(row["median"]), ci,
                          percent(row["cv"]), si(row.get("aggregate_throughput")),
                          percent(row.get("overlap")), row["unit"])
    return table


def execute_run(request: RunRequest, address: str | None, console: Console, command: str = "") -> RunOutcome:
    """Run ``request`` on the cluster at ``address`` (None: embedded Ray); store and summarize.

    Everything a user can get wrong is checked before the first file is written.
    """
    results = check_writable(request.results)
    with ray_session(address, num_cpus=None):
        nodes = probe_nodes()
        trials = plan_trials(request, nodes)
        run_id = new_run_id()
        store = RunStore(results, run_id)
        settings = asdict(request)
        err = Console(stderr=True)
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
            task = progress.add_task("starting", total=len(trials))

            def on_trial(i, trial, result):
                if result is None:
                    progress.update(task, description=f"{trial.workload} · {len(trial.slots)} workers "
                                                      f"· trial {i + 1}/{len(trials)}")
                else:
                    progress.advance(task)

            outcome = execute(run_id, command or " ".join(sys.argv), request.to_json(), settings,
                              trials, nodes, store, on_trial)
    console.print(summary_table(outcome))
    console.print(f"Results: {results} (run_id={run_id}); query with "
                  f"`topobench query \"SELECT * FROM trials WHERE run_id='{run_id}'\"`")
    return outcome
