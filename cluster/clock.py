"""Clock offsets between the driver and a node, from request/response exchanges.

Cristian's algorithm (Cristian 1989, "Probabilistic clock synchronization") with NTP's
minimum-delay filter (RFC 5905, section 10): the driver reads its wall clock (t0), asks the
node for its wall clock (t_remote), reads its own again (t1). Whatever the split of the
round trip between the two directions, the remote reading was taken between t0 and t1, so
offset = t_remote - (t0 + t1) / 2 is off by at most (t1 - t0) / 2; the exchange with the
smallest round trip gives the tightest bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Exchange = tuple[int, int, int]  # (t0_ns driver before, t_remote_ns, t1_ns driver after)


@dataclass(frozen=True, slots=True)
class ClockOffset:
    """A node's clock minus the driver's (ns), true within ± ``uncertainty_ns``."""

    offset_ns: int
    uncertainty_ns: int  # half the smallest round trip, rounded up
    exchanges: int  # how many exchanges it was chosen from


SAME_CLOCK = ClockOffset(0, 0, 0)
"""The offset of a clock to itself (a node on the driver's machine reads the same kernel clock)."""


def estimate_offset(exchanges: Iterable[Exchange]) -> ClockOffset:
    """Estimate the remote-minus-driver offset (ns) from the exchange with the smallest round trip.

    Exchanges whose round trip is negative (the driver's clock stepped back) are dropped;
    ties go to the earliest. Cristian 1989; RFC 5905's minimum-delay filter.

    Raises:
        ValueError: no exchanges, or none with a round trip >= 0.
    """
    valid = [(t1 - t0, t0, remote, t1) for t0, remote, t1 in exchanges if t1 >= t0]
    if not valid:
        raise ValueError("estimate_offset needs at least one exchange with t1 >= t0")
    rtt, t0, remote, t1 = min(valid, key=lambda v: v[0])  # min keeps the first of equals
    # Integral: when t0 + t1 is odd, so is the round trip, and ceil(rtt / 2) covers the floor.
    return ClockOffset((2 * remote - t0 - t1) // 2, (rtt + 1) // 2, len(valid))


def measure_offset(call: Callable[[], int], exchanges: int = 16,
                   clock: Callable[[], int] = time.time_ns) -> ClockOffset:
    """Measure a remote clock's offset to ``clock`` (ns) by ``exchanges`` calls of ``call``.

    ``call`` returns the remote wall clock in ns (e.g. ``lambda: ray.get(actor.wall_ns.remote())``);
    calls are made one after another, each timed by ``clock`` before and after.

    Raises:
        ValueError: ``exchanges`` < 1.
    """
    if exchanges < 1:
        raise ValueError(f"exchanges must be >= 1, got {exchanges}")
    samples = []
    for _ in range(exchanges):
        t0 = clock()
        remote = call()
        samples.append((t0, remote, clock()))
    return estimate_offset(samples)


def to_driver(t_remote_ns: int, offset: ClockOffset) -> int:
    """Convert an instant read on the remote clock (ns) to the driver's clock."""
    return t_remote_ns - offset.offset_ns


def to_remote(t_driver_ns: int, offset: ClockOffset) -> int:
    """Convert an instant on the driver's clock (ns) to the remote clock."""
    return t_driver_ns + offset.offset_ns
