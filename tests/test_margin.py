"""The start margin: floor, factor over the measured submit-and-lateness time, a window, a ceiling."""

from __future__ import annotations

from orchestrator.pipeline.margin import WINDOW, Margin
from orchestrator.settings import StartMargin

MS = 1_000_000
SETTINGS = StartMargin(floor_ns=2 * MS, factor=2.0, ceiling_ns=100 * MS)


def test_the_first_round_of_a_run_gets_the_floor():
    assert Margin(SETTINGS).ns(calls=32) == 2 * MS


def test_a_round_whose_last_call_arrived_late_widens_the_next_margin():
    margin = Margin(SETTINGS)
    margin.observe(5 * MS, calls=4)  # the last of 4 calls arrived 5 ms after the instant was chosen
    assert margin.ns(calls=4) == 2 * MS + 2 * 5 * MS
    margin.observe(9 * MS, calls=4)
    assert margin.ns(calls=4) == 2 * MS + 2 * 9 * MS


def test_a_round_of_more_calls_gets_a_margin_scaled_to_them():
    margin = Margin(SETTINGS)
    margin.observe(4 * MS, calls=2)  # a trial on 2 nodes; the next one has 8
    assert margin.ns(calls=8) == 2 * MS + 2 * 16 * MS
    assert margin.ns(calls=1) == 2 * MS + 2 * 4 * MS  # fewer calls: never below what was seen


def test_one_slow_round_is_forgotten_after_the_window_and_the_ceiling_holds():
    margin = Margin(SETTINGS)
    margin.observe(500 * MS, calls=1)
    assert margin.ns(calls=1) == 100 * MS  # capped: a stall must not push rounds seconds apart
    for _ in range(WINDOW):
        margin.observe(1 * MS, calls=1)
    assert margin.ns(calls=1) == 2 * MS + 2 * MS
