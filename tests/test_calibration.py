"""Calibration (``workloads.harness.calibration``) on a scripted clock: the count it accepts and its samples' time."""

from __future__ import annotations

from workloads.base import Measurement
from workloads.harness import calibrate, calibration

MS = 1_000_000


class Scripted:
    """A workload whose ``run(n)`` takes ``per_iteration_ns`` x n on a fake clock, plus ``extra[k]`` on its k-th call."""

    def __init__(self, per_iteration_ns: int, extra: dict[int, int] | None = None) -> None:
        self.now, self.calls, self.per, self.extra = 0, 0, per_iteration_ns, extra or {}

    def clock(self) -> int:
        return self.now

    def run(self, n: int) -> Measurement:
        self.now += n * self.per + self.extra.get(self.calls, 0)
        self.calls += 1
        return Measurement(ops=n)


def test_calibration_accepts_a_count_two_samples_in_a_row_reach_and_says_what_they_took():
    work = Scripted(per_iteration_ns=MS // 10)  # 0.1 ms an iteration, 10 ms to reach
    got = calibration(work.run, 0.010, clock=work.clock)
    # 1 -> x10 -> x10 = 100 iterations: exactly 10 ms, twice.
    assert (got.iterations, got.sample_ns, work.calls) == (100, 10 * MS, 4)
    again = Scripted(per_iteration_ns=MS // 10)
    assert calibrate(again.run, 0.010, clock=again.clock) == 100  # the count alone, for callers that need no more


def test_the_samples_time_is_the_longer_of_the_two_that_accepted_the_count():
    # The confirming sample (the 4th call) is slowed by 3 ms: the next samples may be as slow.
    work = Scripted(per_iteration_ns=MS // 10, extra={3: 3 * MS})
    got = calibration(work.run, 0.010, clock=work.clock)
    assert (got.iterations, got.sample_ns) == (100, 13 * MS)


def test_one_fast_sample_does_not_fix_a_count_too_small():
    # 100 iterations reach 10 ms on the 3rd call, but the confirming 4th falls 2 ms short: the count
    # grows (x2 at least) and must be confirmed again.
    work = Scripted(per_iteration_ns=MS // 10, extra={3: -2 * MS})
    got = calibration(work.run, 0.010, clock=work.clock)
    assert got.iterations == 200 and got.sample_ns == 20 * MS and work.calls == 6
