"""The progress display of a run or sweep: which trial, how many done, elapsed and remaining."""

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
    from orchestrator.records import OnTrial, Trial


@contextmanager
def trial_progress(total: int | None, describe: Callable[[Trial], str],
                   also: OnTrial | None = None) -> Iterator[OnTrial]:
    """Yield the runner's ``on_trial`` callback driving a progress bar on stderr (terminals only).

    ``describe(trial)`` names the trial that starts; ``also`` is called too (a test seam).
    The bar is transient, so the tables printed afterwards stand alone.
    """
    err = Console(stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("starting", total=total)

        def on_trial(i: int, trial: Trial, result: object) -> None:
            if also is not None:
                also(i, trial, result)
            if result is None:
                progress.update(task, description=describe(trial))
            else:
                progress.advance(task)

        yield on_trial


def describe_sweep_trial(trial: Trial) -> str:
    """Return the progress line of a sweep trial."""
    return (f"{trial.workload} · {len(trial.node_ids)} nodes · {len(trial.slots)} workers · "
            f"{trial.shape.placement}")


def describe_capacity_step(trial: Trial) -> str:
    """Return the progress line of a capacity step: its total offered rate, or closed loop."""
    rate = float(trial.params.get("rate", 0.0)) * len(trial.slots)
    return f"{trial.workload} · {len(trial.slots)} workers · " + (f"{rate:.4g}/s" if rate else "closed loop")
