"""The end-of-run summary: one headline row per trial by default, every metric with --metrics all."""

from __future__ import annotations

from rich.console import Console

from orchestrator.render.rows import shown_rows
from orchestrator.render.run_tables import summary_table


def _row(trial: str, metric: str, median: float, **extra) -> dict:
    return {"trial_id": trial, "workload": f"w.{trial}", "metric": metric, "median": median, "unit": "GB/s",
            "status": "ok", "workers": 1, "cv": 0.01, "n": 10, "ci_low": median * 0.99, "ci_high": median * 1.01,
            "flags": [], **extra}


ROWS = [_row("a", "stream_bytes_per_s", 20e9, aggregate_throughput=20e9), _row("a", "copy_gbs", 20.0),
        _row("a", "copy_best_gbs", 20.0), _row("a", "triad_gbs", 21.0), _row("a", "triad_best_gbs", 22.5),
        _row("b", "lookups_per_s", 1e6, aggregate_throughput=1e6), _row("b", "hit_rate", 0.9)]


def test_the_default_shows_each_trials_headline_only():
    assert [(r["trial_id"], r["metric"]) for r in shown_rows(ROWS, all_metrics=False)] == [
        ("a", "stream_bytes_per_s"), ("b", "lookups_per_s")]


def test_every_metric_but_a_best_that_equals_its_mean():
    shown = [r["metric"] for r in shown_rows(ROWS, all_metrics=True)]
    assert "copy_best_gbs" not in shown  # one pass per sample: the same number as copy_gbs
    assert "triad_best_gbs" in shown  # differs from triad_gbs: kept
    assert len(shown) == len(ROWS) - 1


def test_a_failed_trial_still_shows_and_the_caption_says_where_the_rest_is():
    failed = {"trial_id": "c", "workload": "w.c", "metric": "x", "status": "failed", "workers": 2,
              "error": "boom"}
    console = Console(width=200, record=True)
    console.print(summary_table([*ROWS, failed], "title"))
    text = console.export_text()
    assert "boom" in text and "--metrics all" in text and "copy_gbs" not in text
