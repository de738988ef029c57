"""The order a run measures its trials' invocations in: interleaved, so drift cannot pose as a difference.

A machine drifts over minutes (thermal state, other tenants, the page cache). Measured one
after another, trial A's invocations would all fall before trial B's and a drift would read as
a difference between A and B. So the trials of a window take turns: invocation 1 of each,
then invocation 2 of each, and so on (Georges et al. 2007 and Kalibera & Jones 2013 randomise
or alternate for the same reason). Windows of ``INTERLEAVE_TRIALS`` bound what an interrupt
leaves unfinished: a trial is stored once all its invocations are done, so at most one window's
trials are partial. A capacity search plans each step from the last, so its trials are not
interleaved (each runs its invocations one after another).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence

from orchestrator.records import Trial

INTERLEAVE_TRIALS = 8
"""Trials whose invocations take turns; a run of up to this many trials is one window."""


def invocation_order(invocations: Sequence[int], window: int = INTERLEAVE_TRIALS) -> list[tuple[int, int]]:
    """Return (trial index, invocation) in run order for trials asking ``invocations[i]`` each.

    Per window of ``window`` consecutive trials, pass k runs invocation k of every trial of the
    window that asks for more than k, in trial order.
    """
    order: list[tuple[int, int]] = []
    for start in range(0, len(invocations), window):
        block = range(start, min(len(invocations), start + window))
        for k in range(max(invocations[i] for i in block)):
            order += [(i, k) for i in block if k < invocations[i]]
    return order


def invocation_steps(trials: Iterable[Trial], invocations_of: Callable[[Trial], int],
                     skip: Collection[str] = ()) -> Iterator[tuple[int, Trial, int]]:
    """Yield (trial index, trial, invocation) in run order; trials in ``skip`` (by id) are left out.

    A sequence of trials is interleaved (``invocation_order``); any other iterable (a search,
    which plans each trial from the last) is taken lazily, each trial's invocations in a row.
    """
    if isinstance(trials, Sequence):
        todo = [i for i, t in enumerate(trials) if t.trial_id not in skip]
        for j, k in invocation_order([invocations_of(trials[i]) for i in todo]):
            yield todo[j], trials[todo[j]], k
        return
    for i, trial in enumerate(trials):
        if trial.trial_id not in skip:
            for k in range(invocations_of(trial)):
                yield i, trial, k
