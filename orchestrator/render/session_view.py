"""What ``run`` and ``sweep`` print after their trials: summary, notes, targets, then the "Results:" line."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console, RenderableType

from orchestrator.analysis.flags import thresholds
from orchestrator.pipeline.session import Session
from orchestrator.render.notes import summary_notes
from orchestrator.render.run_tables import summary_table, targets_table
from orchestrator.settings import Sampling


def print_session(console: Console, session: Session, command: str, sampling: Sampling,
                  extra: Iterable[RenderableType] = (), query_table: str = "trials") -> None:
    """Print a finished session: the trials table and notes, targets, ``extra``, the results line."""
    outcome = session.outcome
    console.print(summary_table(session.rows, f"topobench {command} {outcome.run_id} — {outcome.status}"))
    for line in summary_notes(session.rows, thresholds(sampling)):
        console.print(line, highlight=False)
    if session.targets:
        console.print(targets_table(session.targets))
    for renderable in extra:
        console.print(renderable)
    console.print(f"Results: {session.results} (run_id={outcome.run_id}); query with "
                  f"`topobench query \"SELECT * FROM {query_table} WHERE run_id='{outcome.run_id}'\"`")
