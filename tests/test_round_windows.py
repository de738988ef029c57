"""The driver's side of windowed rounds: batches, missed windows re-run with twice the window, and the numbering.

The agents here are Ray actors that answer each batch as a node whose samples last scripted
times would (a worker takes its calls in order: a sample starts at its instant, or when the
one before it ended if that was later), so a missed window can be made to happen on purpose.
The real agents and workers run in every end-to-end test (``test_rounds``, ``test_cli``).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import ray

from orchestrator.analysis.stopping import StoppingRule
from orchestrator.pipeline.margin import Margin
from orchestrator.pipeline.rounds import WindowsMissed, measure_rounds
from orchestrator.settings import START_MARGIN, RoundWindow, Sampling

MS = 1_000_000
WINDOW = RoundWindow(factor=1.25, guard_ns=5 * MS, retries=3)


@ray.remote(num_cpus=0)
class ScriptedNode:
    """Answers batches of rounds as one node of one worker whose k-th sample lasts ``durations_ms[k]``."""

    def __init__(self, durations_ms: list[float], late_ms: float | None = None) -> None:
        self._durations = [int(d * MS) for d in durations_ms]
        self._late = None if late_ms is None else int(late_ms * MS)
        self.batches: list[tuple[list[tuple[int, bool]], int]] = []

    def rounds(self, first_ns: int, window_ns: int, iterations: int, plan: list[tuple[int, bool]],
               within_s: float) -> tuple:
        self.batches.append((list(plan), window_ns))
        free, out, at = first_ns - MS, [], first_ns  # the batch's calls reach the worker 1 ms before the first instant
        for _ in plan:
            called = free if self._late is None else max(free, at + self._late)
            start = max(called, at)
            end = start + self._durations.pop(0)
            out.append((at, ((called, start, end, 1000, end - start),)))
            free = end + MS // 10  # the next call begins a moment after the sample ends
            at = at + window_ns if window_ns else free + MS  # no window: the node is the barrier
        time.sleep(max(0.0, (free - time.time_ns()) / 1e9))  # answers once its rounds would have run
        return tuple(out)

    def seen(self) -> list[tuple[list[tuple[int, bool]], int]]:
        return self.batches


def measure(nodes: list, repetitions: int = 5, first: int = 0, offsets: list[int] | None = None,
            window: RoundWindow = WINDOW):
    sampling = Sampling(repetitions=repetitions, warmup=1, min_time_s=0.01)
    return measure_rounds(nodes, sampling, 100, offsets or [0] * len(nodes), None, Margin(START_MARGIN),
                          sample_s=0.01, first=first, window=window)


@pytest.mark.ray
def test_rounds_that_keep_their_windows_take_two_calls_per_node(ray_local):
    # The second node's clock is 3 s ahead of the driver's: it gets its instants on its own clock.
    nodes = [ScriptedNode.remote([10] * 6), ScriptedNode.remote([10] * 6)]
    rounds = measure(nodes, offsets=[0, 3 * 10**9])
    assert rounds.values.shape == (5, 2) and rounds.missed == ()
    for node in nodes:
        (warmups, _), (measured, window) = ray.get(node.seen.remote())
        assert warmups == [(-1, True)]
        assert measured == [(r, False) for r in range(5)]
        assert window == WINDOW.ns(0.010)  # sized from the warm-up's 10 ms sample


@pytest.mark.ray
def test_warm_ups_taken_together_size_the_first_window_not_calibration(ray_local):
    # Calibration said 10 ms (taken alone); the warm-up, all workers together, lasts 22 ms on one node. A
    # 17.5 ms window would make round 0 start late there; sized from the warm-up, no round misses.
    cold = ScriptedNode.remote([22] + [10] * 3)
    warm = ScriptedNode.remote([10] * 4)
    rounds = measure([warm, cold], repetitions=3)
    assert rounds.missed == () and rounds.values.shape == (3, 2)
    assert ray.get(cold.seen.remote()) == [([(-1, True)], WINDOW.ns(0.010)),
                                           ([(r, False) for r in range(3)], WINDOW.ns(0.022))]


@pytest.mark.ray
def test_one_node_takes_its_warm_ups_and_rounds_in_one_call(ray_local):
    node = ScriptedNode.remote([22] + [10] * 3)
    rounds = measure([node], repetitions=3)
    assert rounds.missed == () and rounds.values.shape == (3, 1)
    assert ray.get(node.seen.remote()) == [([(-1, True), (0, False), (1, False), (2, False)], 0)]  # the barrier


@pytest.mark.ray
def test_a_round_that_runs_long_on_one_node_is_rerun_with_twice_the_window(ray_local):
    # Node 2's round 9 lasts 20 ms in a 17.5 ms window: it runs into round 10, which starts late there
    # (and, with 7.5 ms to spare in its window, ends in time for round 11). Round 9 itself is kept: a
    # round is never dropped for its own time, only for starting late.
    slow = ScriptedNode.remote([10, 10, 10, 20, 10, 10, 10, 10])
    fast = ScriptedNode.remote([10] * 8)
    rounds = measure([fast, slow], first=7)
    assert rounds.missed == (10,)
    assert rounds.values.shape == (5, 2)  # every round asked for, measured
    assert rounds.values[2, 1] == 1000 / 0.020  # the slow round, as it ran
    batches = ray.get(slow.seen.remote())
    assert [plan for plan, _ in batches] == [[(-1, True)], [(r, False) for r in range(7, 12)], [(12, False)]]
    first_window = WINDOW.ns(0.010)
    assert batches[2][1] == max(2 * first_window, WINDOW.ns(0.020))  # twice, at least the longest sample's
    assert ray.get(fast.seen.remote()) == batches  # every node runs the same rounds


@pytest.mark.ray
def test_an_invocation_whose_every_round_misses_its_window_fails_with_a_sentence(ray_local):
    # Every sample's call begins 1 ms after its instant (a worker never on time).
    late = ScriptedNode.remote([10] * 40, late_ms=1)
    with pytest.raises(WindowsMissed, match=r"all 20 measured rounds started late .* in 4 batches, the last with "
                                            r"0\.14 s between rounds"):
        measure([late])
    batches = ray.get(late.seen.remote())
    assert len(batches) == 1 + WINDOW.retries  # the warm-up with the rounds, and every retry


@pytest.mark.ray
def test_many_rounds_go_in_batches_of_at_most_most_rounds(ray_local):
    node = ScriptedNode.remote([10] * 6)
    rounds = measure([node], window=RoundWindow(most_rounds=2))
    assert rounds.values.shape == (5, 1)
    batches = ray.get(node.seen.remote())
    assert [plan for plan, _ in batches] == [[(-1, True), (0, False)], [(1, False), (2, False)],
                                             [(3, False), (4, False)]]
    assert {window for _, window in batches} == {0}  # one node: its agent is the barrier, no window


@pytest.mark.ray
def test_until_stable_batches_end_by_max_time_at_the_window_rounds_take_now(ray_local):
    # Samples of 10 ms and a CI that can never be narrow enough: with --max-time 0.5 s, the batches may not
    # run past it. (The stopping rule's first look builds its tables: done before, so it is not timed here.)
    StoppingRule(1e-9).look(np.random.default_rng(1).normal(10, 1, (3, 1)))
    durations = list(np.random.default_rng(2).uniform(9, 11, 200))
    nodes = [ScriptedNode.remote(durations), ScriptedNode.remote(durations)]
    ray.get([node.seen.remote() for node in nodes])  # started, as a trial's agents are: a start is not measuring time
    sampling = Sampling(repetitions=3, warmup=1, min_time_s=0.01, until_stable=True, rel_ci=1e-9, max_time_s=0.5)
    rounds = measure_rounds(nodes, sampling, 100, [0, 0], None, Margin(START_MARGIN), sample_s=0.01, window=WINDOW)
    assert rounds.stop_reason == "max-time"
    batches = ray.get(nodes[0].seen.remote())
    windows = sum(sum(not warmup for _, warmup in plan) * window for plan, window in batches)
    assert len(batches) > 3  # batches went on until --max-time
    assert windows <= 0.5e9  # every batch's rounds fit in --max-time
    assert rounds.measure_s < 0.5 + 0.3  # and the driver's clock agrees, with room for the calls
