"""Stopping a run from outside: Ctrl-C (KeyboardInterrupt) and SIGTERM (``Terminated``) alike."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

_received = {"sigterm": False}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is so it stops as Ctrl-C would (exit 143, not 130)."""


def take_sigterm() -> bool:
    """Return whether SIGTERM came during the last ``terminated_on_sigterm`` block, and forget it.

    Raised inside a Ray wait, ``Terminated`` comes out as a plain KeyboardInterrupt (Ray turns
    any interrupt it sees while waiting into a new one), so the exit code asks this; forgotten,
    a later Ctrl-C in the same process (a test's) is not read as SIGTERM.
    """
    seen, _received["sigterm"] = _received["sigterm"], False
    return seen


@contextmanager
def terminated_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into ``Terminated`` while the block runs; restore the previous handler after."""
    def handler(signum: int, frame: object) -> None:
        _received["sigterm"] = True
        raise Terminated

    _received["sigterm"] = False
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
