"""Every wait on Ray results in one place: gather in order, bounded by a deadline; name what failed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import ray

from orchestrator.pipeline.costs import count_calls

GATHER_BATCH = 16


class TrialTimeout(Exception):
    """A trial ran past its ``--trial-timeout``."""


def gather(refs: Sequence[ray.ObjectRef], deadline: float | None = None) -> list[Any]:
    """Return ``ray.get`` of ``refs`` in their order, fetching in batches with ``ray.wait``.

    ``deadline`` (``time.monotonic()`` seconds) bounds the wait.

    Raises:
        TrialTimeout: the deadline passed before every result came.
    """
    count_calls(len(refs))
    pending = list(refs)
    done: dict[ray.ObjectRef, Any] = {}
    while pending:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TrialTimeout
        ready, pending = ray.wait(pending, num_returns=min(GATHER_BATCH, len(pending)), timeout=left)
        done.update(zip(ready, ray.get(ready)))
    return [done[r] for r in refs]


ERROR_CHARS = 2000
"""Most characters of an error kept in a failed trial's row (the end of a longer one)."""


def describe_error(exc: BaseException) -> str:
    """Return what went wrong: a workload's own message whole (command, exit code, stderr tail), bounded.

    A workload's exception reaches the driver wrapped in a RayTaskError whose ``cause`` is
    the original; Ray's own errors (a lost actor or node) say what happened on their first line.
    """
    cause = getattr(exc, "cause", None)
    if cause is None:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".strip()
    text = f"{type(cause).__name__}: {cause}".strip()
    return text if len(text) <= ERROR_CHARS else "…" + text[-ERROR_CHARS:]
