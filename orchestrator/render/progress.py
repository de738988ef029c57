"""The progress display of a run or sweep: which trial and invocation, how many done, elapsed and remaining."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:
    from orchestrator.records import Trial


@contextmanager
def trial_progress(total: int | None, describe: Callable[[Trial], str]) -> Iterator[Callable[..., None]]:
    """Yield a callback driving a progress bar over a run's invocations on stderr (terminals only).

    ``step(trial, invocation, invocations)`` names the invocation that starts;
    ``step(trial, invocation, invocations, done=n)`` counts ``n`` invocations as done (a failed
    trial's remaining ones too). ``total`` counts invocations (None: a search, unknown). The
    bar is transient, so the tables printed afterwards stand alone.
    """
    err = Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("starting", total=total)

        def step(trial: Trial, invocation: int, invocations: int, done: int = 0) -> None:
            if done:
                progress.advance(task, done)
                return
            which = f" · invocation {invocation + 1}/{invocations}" if invocations > 1 else ""
            progress.update(task, description=describe(trial) + which)

        yield step


def describe_sweep_trial(trial: Trial) -> str:
    """Return the progress line of a sweep trial."""
    return (f"{trial.workload} · {len(trial.node_ids)} nodes · {len(trial.slots)} workers · "
            f"{trial.shape.placement}")


def describe_capacity_step(trial: Trial) -> str:
    """Return the progress line of a capacity step: its total offered rate, or closed loop."""
    rate = float(trial.params.get("rate", 0.0)) * len(trial.slots)
    return f"{trial.workload} · {len(trial.slots)} workers · " + (f"{rate:.4g}/s" if rate else "closed loop")
