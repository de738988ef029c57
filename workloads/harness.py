"""The measured loop and its calibration; plain Python, no Ray.

Method after pyperf: time ``run(n)`` with a monotonic ns clock, growing ``n`` until one
sample lasts at least ``min_time`` seconds, so timer resolution and call overhead are
negligible against the work measured.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workloads.base import Measurement

Clock = Callable[[], int]


@dataclass(frozen=True, slots=True)
class TimedRun:
    """One timed ``run(n)``: wall-clock start/end (ns since the epoch) and elapsed ns."""

    iterations: int
    start_ns: int
    end_ns: int
    elapsed_ns: int
    measurement: Measurement


def time_run(
    run: Callable[[int], Measurement],
    n: int,
    clock: Clock = time.perf_counter_ns,
    wall: Clock = time.time_ns,
) -> TimedRun:
    """Call ``run(n)`` once and return its elapsed ns (``clock``) and wall-clock bounds.

    A measurement's ``finish`` runs after both clocks are read: summarizing is not timed.
    """
    start_wall = wall()
    t0 = clock()
    measurement = run(n)
    t1 = clock()
    end_wall = wall()
    return TimedRun(n, start_wall, end_wall, t1 - t0, measurement.finished())


@dataclass(frozen=True, slots=True)
class Calibration:
    """The iteration count calibration chose, and how long a sample of it took."""

    iterations: int
    sample_ns: int
    """The longer of the two samples that accepted the count (what the next samples will take, about)."""


def calibration(
    run: Callable[[int], Measurement],
    min_time_s: float,
    clock: Clock = time.perf_counter_ns,
    max_iterations: int = 1 << 40,
) -> Calibration:
    """Return the iteration count whose samples last at least ``min_time_s``, with its samples' time.

    Starts at one iteration and scales by the measured shortfall (x1.2 margin, at most x10
    a step, at least x2), as pyperf's calibration does. A count is accepted only when two
    consecutive samples with it both reach ``min_time_s``: one noisy fast sample cannot
    fix a count that is too small. ``max_iterations`` caps runaway growth for no-op workloads.
    """
    target_ns = int(min_time_s * 1e9)
    n = 1
    while True:
        elapsed = time_run(run, n, clock).elapsed_ns
        if elapsed >= target_ns:
            confirm = time_run(run, n, clock).elapsed_ns
            if confirm >= target_ns or n >= max_iterations:
                return Calibration(n, max(elapsed, confirm))
            elapsed = confirm
        if n >= max_iterations:
            return Calibration(n, elapsed)
        factor = 10.0 if elapsed <= 0 else min(10.0, max(2.0, 1.2 * target_ns / elapsed))
        n = min(max_iterations, math.ceil(n * factor))


def calibrate(
    run: Callable[[int], Measurement],
    min_time_s: float,
    clock: Clock = time.perf_counter_ns,
    max_iterations: int = 1 << 40,
) -> int:
    """Return the iteration count ``calibration`` chooses."""
    return calibration(run, min_time_s, clock, max_iterations).iterations


def sleep_until(wall_ns: int, wall: Clock = time.time_ns) -> None:
    """Sleep until the wall clock reads ``wall_ns``; spin for the last millisecond."""
    while True:
        left = wall_ns - wall()
        if left <= 0:
            return
        if left > 2_000_000:
            time.sleep((left - 1_000_000) / 1e9)
