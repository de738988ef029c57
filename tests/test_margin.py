"""The start margin: floor, factor over the measured submit-and-lateness time, a window, a ceiling."""

from __future__ import annotations

from orchestrator.pipeline.margin import WINDOW, Margin
from orchestrator.settings import StartMargin

MS = 1_000_000
SETTINGS = StartMargin(floor_ns=2 * MS, factor=2.0, ceiling_ns=100 * MS)


def test_the_first_round_covers_twice_the_measured_call_time_over_the_floor():
    assert Margin(SETTINGS).ns() == 2 * MS
    assert Margin(SETTINGS, first_ns=3 * MS).ns() == 2 * MS + 6 * MS


def test_a_round_whose_last_call_arrived_late_widens_the_next_margin():
    margin = Margin(SETTINGS, first_ns=1 * MS)
    margin.observe(5 * MS)  # the last call arrived 5 ms after the instant was chosen
    assert margin.ns() == 2 * MS + 2 * 5 * MS
    margin.observe(9 * MS)
    assert margin.ns() == 2 * MS + 2 * 9 * MS


def test_one_slow_round_is_forgotten_after_the_window_and_the_ceiling_holds():
    margin = Margin(SETTINGS)
    margin.observe(500 * MS)
    assert margin.ns() == 100 * MS  # capped: a stall must not push rounds seconds apart
    for _ in range(WINDOW):
        margin.observe(1 * MS)
    assert margin.ns() == 2 * MS + 2 * MS
