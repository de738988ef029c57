"""Stopping a run from outside: Ctrl-C (KeyboardInterrupt) and SIGTERM (``Terminated``) alike."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is so it stops as Ctrl-C would (exit 143, not 130)."""


@contextmanager
def terminated_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into ``Terminated`` while the block runs; restore the previous handler after."""
    def handler(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
