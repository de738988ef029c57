"""What ``run``, ``sweep`` and ``capacity`` print after their trials: summary, notes, targets, the "Results:" line."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console, RenderableType

from orchestrator.analysis.flags import thresholds
from orchestrator.records import Session
from orchestrator.render.notes import summary_notes
from orchestrator.render.run_tables import summary_table, targets_table
from orchestrator.settings import Sampling


def print_session(console: Console, session: Session, command: str, sampling: Sampling,
                  extra: Iterable[RenderableType] = (), query_table: str = "trials", all_metrics: bool = False) -> None:
    """Print a finished session: the trials table and notes, targets, ``extra``, the results line."""
    title = f"topobench {command} {session.run_id} — {session.status}"
    console.print(summary_table(session.rows, title, all_metrics))
    for line in summary_notes(session.rows, thresholds(sampling)):
        console.print(line, highlight=False)
    if session.targets:
        console.print(targets_table(session.targets))
    for renderable in extra:
        console.print(renderable)
    console.print(results_line(session, query_table))


def results_line(session: Session, table: str) -> str:
    """Return where the run is stored and the query that shows it."""
    return (f"Results: {session.results} (run_id={session.run_id}); query with "
            f"`topobench query \"SELECT * FROM {table} WHERE run_id='{session.run_id}'\"`")


def no_series_text(session: Session) -> str:
    """Say why a sweep has no scaling series: nothing varied, or too few points completed."""
    by_trial = {r["trial_id"]: r for r in session.rows}
    done = [f"{r['nodes']} nodes x {r['workers']} workers" for r in by_trial.values() if r["status"] == "ok"]
    failed = [f"{r['nodes']} nodes x {r['workers']} workers ({r['error']})" for r in by_trial.values()
              if r["status"] != "ok"]
    if not failed:
        return "No scaling series: vary nodes or workers_per_node over two or more values."
    return (f"No scaling series: a series needs two completed points; completed: {', '.join(done) or 'none'}; "
            f"failed: {'; '.join(failed)}.")
