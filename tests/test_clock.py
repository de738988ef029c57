"""Clock offset estimation (Cristian 1989; RFC 5905 minimum-delay filter), on exact exchanges."""

from __future__ import annotations

import random
import time

import pytest

from cluster.clock import ClockOffset, estimate_offset, measure_offset, to_driver, to_remote

MS = 1_000_000
US = 1_000


def synthetic(offset_ns: int, n: int, rng: random.Random) -> list[tuple[int, int, int]]:
    """Exchanges against a clock ``offset_ns`` ahead, with random asymmetric one-way delays."""
    out = []
    t = 1_700_000_000 * 10**9
    for _ in range(n):
        t += rng.randrange(1 * MS, 5 * MS)
        there = 50 * US + int(rng.expovariate(1 / (200 * US)))  # driver -> node
        back = 50 * US + int(rng.expovariate(1 / (1 * MS)))  # node -> driver, slower
        out.append((t, t + there + offset_ns, t + there + back))
    return out


@pytest.mark.parametrize("true_offset", [30 * MS, -30 * MS, 0, 7])
def test_synthetic_exchanges_recover_the_offset_within_the_smallest_round_trip(true_offset):
    rng = random.Random(true_offset)
    exchanges = synthetic(true_offset, 200, rng)
    got = estimate_offset(exchanges)
    smallest = min(t1 - t0 for t0, _, t1 in exchanges)
    assert got.uncertainty_ns == (smallest + 1) // 2
    assert abs(got.offset_ns - true_offset) <= got.uncertainty_ns
    assert got.exchanges == 200
    # Asymmetric delays bias the midpoint of a typical exchange by far more than the best one's.
    assert got.uncertainty_ns < 200 * US


def test_the_exchange_with_the_smallest_round_trip_wins_wherever_it_is():
    offset = 30 * MS
    slow = (0, 9 * MS + offset, 10 * MS)  # 10 ms round trip, 9 ms of it outbound: 4 ms off
    fast = (20 * MS, 20 * MS + 50 * US + offset, 20 * MS + 100 * US)  # symmetric 100 us
    for order in ([slow, fast, slow], [fast, slow], [slow, slow, fast]):
        assert estimate_offset(order) == ClockOffset(offset, 50 * US, len(order))
    assert estimate_offset([slow]).offset_ns == offset + 4 * MS


def test_integer_rounding_keeps_the_true_offset_inside_the_bound():
    # t_remote = 5 with t0 = 0, t1 = 3: the true offset is anywhere in [2, 5].
    got = estimate_offset([(0, 5, 3)])
    assert (got.offset_ns, got.uncertainty_ns) == (3, 2)
    assert all(abs(true - got.offset_ns) <= got.uncertainty_ns for true in range(2, 6))


def test_exchanges_with_a_backward_step_are_dropped_and_none_is_an_error():
    assert estimate_offset([(10, 20, 5), (0, 10, 4)]) == ClockOffset(8, 2, 1)
    with pytest.raises(ValueError, match="at least one exchange"):
        estimate_offset([])
    with pytest.raises(ValueError, match="at least one exchange"):
        estimate_offset([(10, 20, 5)])


def test_measure_offset_against_a_fake_remote_clock_30_ms_ahead():
    rng = random.Random(1)

    def remote_wall_ns() -> int:
        time.sleep(rng.uniform(0, 0.002))
        now = time.time_ns() + 30 * MS
        time.sleep(rng.uniform(0, 0.002))
        return now

    got = measure_offset(remote_wall_ns, exchanges=16)
    assert got.exchanges == 16
    assert abs(got.offset_ns - 30 * MS) <= got.uncertainty_ns
    assert got.uncertainty_ns < 5 * MS  # two sleeps of at most 2 ms each, plus scheduling


def test_measure_offset_times_each_call_with_the_given_clock():
    ticks = iter(range(0, 10**9, 1000))  # the driver's clock: 0, 1000, 2000, ... ns
    remote = iter(range(10_500, 10**9, 2000))  # read midway through each call, 10 us ahead
    got = measure_offset(lambda: next(remote), exchanges=3, clock=lambda: next(ticks))
    assert got == ClockOffset(10_000, 500, 3)
    with pytest.raises(ValueError, match="exchanges must be >= 1"):
        measure_offset(lambda: 0, exchanges=0)


def test_conversions_between_the_two_clocks():
    ahead = ClockOffset(30 * MS, 10 * US, 16)  # the node's clock reads 30 ms more
    assert to_driver(1_000 * MS, ahead) == 970 * MS
    assert to_remote(970 * MS, ahead) == 1_000 * MS
    assert to_driver(to_remote(123_456_789, ahead), ahead) == 123_456_789
