"""Every wait on Ray results in one place: each bounded by a deadline, naming what did not come and why."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray

from orchestrator.pipeline.costs import count_calls

POLL_S = 1.0
"""Longest single ``ray.wait``: a failed call among many is raised within this, not at the end."""


class TrialTimeout(Exception):
    """A trial ran past its ``--trial-timeout``."""


class Sentence(Exception):
    """An error whose ``str()`` is the whole sentence a user reads (what, where, why): stored as it is."""


class WaitExpired(Sentence):
    """A wait passed its deadline; ``str()`` names what did not come and why, in one sentence."""


@dataclass(frozen=True, slots=True)
class Sender:
    """Who owes one result: a label ("worker 3", "the agent") and the Ray node it runs on."""

    label: str
    node_id: str
    hostname: str = ""


@dataclass(frozen=True, slots=True)
class Expect:
    """What a wait is for: results named ``what`` ("round 3 samples") within ``within_s``, from ``senders``."""

    what: str
    within_s: float
    senders: Sequence[Sender] = ()


def _why(missing: Sequence[Sender]) -> str:
    """Say why results are missing: a node gone, else senders alive but not answering."""
    alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    gone = {s.node_id: s.hostname for s in missing if s.node_id and s.node_id not in alive}
    if gone:
        return "node " + ", ".join(f"{n[:12]}{f' ({h})' if h else ''}" for n, h in gone.items()) + " left the cluster"
    return ("their nodes are alive, so the calls are still running or stalled (a slow workload, an overloaded "
            "node, or CPUs another process holds: `ray status` shows what runs where)")


def expired(expect: Expect, refs: Sequence[ray.ObjectRef], pending: Sequence[ray.ObjectRef]) -> str:
    """Return the sentence for ``expect`` having passed with ``pending`` of ``refs`` still missing."""
    late = set(pending)
    missing = [s for ref, s in zip(refs, expect.senders) if ref in late]
    named = ", ".join(f"{s.label} on node {s.node_id[:12]}{f' ({s.hostname})' if s.hostname else ''}"
                      for s in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    who = f": {named}{more}; " if missing else "; "
    return (f"{len(pending)} of {len(refs)} {expect.what} did not come within {expect.within_s:g} s{who}"
            f"{_why(missing)}.")


def gather(refs: Sequence[ray.ObjectRef], deadline: float | None, expect: Expect) -> list[Any]:
    """Return ``ray.get`` of ``refs`` in their order, waiting at most until the nearer of two deadlines.

    ``deadline`` is the trial's (``time.monotonic()`` seconds, or None); ``expect`` bounds this
    wait on its own (``settings.DEADLINES`` holds each kind's). A failed call is raised as
    soon as it is seen.

    Raises:
        TrialTimeout: the trial's deadline passed first.
        WaitExpired: ``expect``'s time passed first (the sentence says what did not come and why).
    """
    count_calls(len(refs))
    own = time.monotonic() + expect.within_s
    pending = list(refs)
    done: dict[ray.ObjectRef, Any] = {}
    while pending:
        now = time.monotonic()
        if deadline is not None and now >= deadline and deadline <= own:
            raise TrialTimeout
        if now >= own:
            raise WaitExpired(expired(expect, refs, pending))
        left = min(own, deadline if deadline is not None else own) - now
        # One wait for all that are left (a rescan per result would cost O(calls^2)), in slices,
        # so a call that failed early is raised without waiting for the slowest.
        ready, pending = ray.wait(pending, num_returns=len(pending), timeout=min(left, POLL_S))
        done.update(zip(ready, ray.get(ready)))
    return [done[r] for r in refs]


ERROR_CHARS = 2000
"""Most characters of an error kept in a failed trial's row (the end of a longer one)."""


def _ray_error(exc: BaseException) -> str:
    """Return Ray's own error whole but flat: its first line, where (class, pid, ip) and why it says it happened."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    facts = dict(line.strip().split(": ", 1) for line in lines[1:] if line.startswith("\t") and ": " in line)
    where = ", ".join(f"{k} {facts[k]}" for k in ("class_name", "pid", "ip") if k in facts)
    rest = " ".join(line.strip() for line in lines[1:] if not line.startswith("\t"))
    return " ".join(filter(None, (f"{type(exc).__name__}: {lines[0]}", f"({where})" if where else "", rest)))


def describe_error(exc: BaseException) -> str:
    """Return what went wrong: a workload's own message whole (command, exit code, stderr tail), bounded.

    A workload's exception reaches the driver wrapped in a RayTaskError whose ``cause`` is
    the original; a ``Sentence`` (raised here or by an agent) is kept as it is; Ray's own
    errors (a lost actor or node) keep why Ray says it happened (an actor's exit type and
    detail), which their first line alone does not.
    """
    cause = getattr(exc, "cause", None)
    if isinstance(exc, Sentence) or isinstance(cause, Sentence):
        text = str(cause if cause is not None else exc)
    elif cause is None:
        text = _ray_error(exc)
    else:
        text = f"{type(cause).__name__}: {cause}".strip()
    return text if len(text) <= ERROR_CHARS else "…" + text[-ERROR_CHARS:]
