"""The runs this process is writing now, so that a reader in the same process can tell them from closed ones.

A run row says ``running`` with the driver's host and pid until its final row is written. When
that last write fails (the storage went away), the pid alone would keep a closed run looking
alive to a reader in the same process; this registry says it is not.
"""

from __future__ import annotations

_OPEN: set[str] = set()


def mark_open(run_id: str) -> None:
    """Record that this process is writing ``run_id``."""
    _OPEN.add(run_id)


def mark_closed(run_id: str) -> None:
    """Record that this process has stopped writing ``run_id`` (whether or not its last row was stored)."""
    _OPEN.discard(run_id)


def is_open(run_id: str) -> bool:
    """Return whether this process is writing ``run_id`` now."""
    return run_id in _OPEN
