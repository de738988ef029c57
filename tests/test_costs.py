"""The per-trial meter: wall and CPU seconds by phase, calls counted where they are waited on."""

from __future__ import annotations

import time

from orchestrator.pipeline.costs import count_calls, metering, phase


def spin(seconds: float) -> None:
    """Burn ``seconds`` of this thread's CPU: no clock (wall, process) can then read less."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_phases_add_up_their_own_time_and_calls_only():
    with metering() as meter:
        with phase("prepare"):
            count_calls(4)
            spin(0.02)
            with phase("rounds"):  # a nested phase's time is not its parent's as well
                count_calls(3)
                spin(0.05)
        with phase("rounds"):
            count_calls(3)
        count_calls(1)  # outside any phase
    costs = meter.costs().phases
    assert list(costs) == ["prepare", "rounds", "other"]
    assert (costs["prepare"].calls, costs["rounds"].calls, costs["other"].calls) == (4, 6, 1)
    assert 0.02 <= costs["prepare"].cpu_s < 0.045
    assert costs["rounds"].cpu_s >= 0.05 and costs["rounds"].wall_s >= 0.05


def test_nothing_is_counted_without_a_meter():
    with phase("prepare"):
        count_calls(5)
    with metering() as meter:
        pass
    assert meter.costs().phases == {}
