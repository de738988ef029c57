"""The trial flags (unstable, noisy, underused), resource figures, and the sentences that explain them."""

from __future__ import annotations

import pyarrow as pa

from cluster.resource_monitor import RESOURCE_COLUMNS
from orchestrator.analysis.flags import FlagThresholds, flag_trial, peak_rss, resource_columns
from orchestrator.render.notes import flag_notes


def resource_table(rows: list[tuple[int, str, int | None, float]]) -> pa.Table:
    names = ("t_ns", "kind", "cpu", "value")
    return pa.Table.from_pylist([{**dict(zip(names, r)), "since_ns": r[0]} for r in rows], RESOURCE_COLUMNS)


def test_flag_trial_quiet_trial_has_no_flags():
    assert flag_trial({0: 99.0, 1: 97.0, 2: 10.0, 3: 49.9}, {0, 1}, 0.01) == ()


def test_flag_trial_unstable_above_max_cv_only():
    assert flag_trial({}, (), 0.051) == ("unstable",)
    assert flag_trial({}, (), 0.05) == ()
    assert flag_trial({}, (), None) == ()
    assert flag_trial({}, (), 0.08, FlagThresholds(max_cv=0.10)) == ()


def test_flag_trial_noisy_when_cpu_outside_plan_is_busy():
    assert flag_trial({0: 100.0, 1: 50.1}, {0}, 0.0) == ("noisy",)
    assert flag_trial({0: 100.0, 1: 50.0}, {0}, 0.0) == ()


def test_flag_trial_underused_when_a_planned_cpu_idles():
    assert flag_trial({0: 100.0, 1: 49.0}, {0, 1}, 0.0) == ("underused",)
    # A planned CPU without utilization samples is not judged.
    assert flag_trial({0: 100.0}, {0, 1}, 0.0) == ()


def test_flag_trial_all_flags_in_order_and_keys_across_nodes():
    means = {("a", 0): 10.0, ("a", 1): 90.0, ("b", 0): 95.0}
    assert flag_trial(means, {("a", 0), ("b", 0)}, 0.2) == ("unstable", "noisy", "underused")


def test_flag_trial_unpinned_gets_no_resource_flags():
    assert flag_trial({0: 5.0, 1: 100.0}, (), 0.2) == ("unstable",)


def test_peak_rss():
    table = resource_table([
        (1, "cpu_percent", 0, 100.0), (1, "cpu_percent", 1, 20.0), (1, "rss_bytes", None, 5e6),
        (2, "cpu_percent", 0, 50.0), (2, "cpu_percent", 1, 40.0), (2, "rss_bytes", None, 7e6),
    ])
    assert peak_rss(table) == 7e6
    assert peak_rss(resource_table([(1, "cpu_percent", 0, 1.0)])) is None


def test_resource_columns():
    cols = resource_columns({0: 90.0, 1: 70.0, 2: 30.0, 3: 60.0}, {0, 1}, {1: 2e6, 0: 3e6})
    assert cols == {"pinned_cpu_percent": 80.0, "idlest_pinned_cpu_percent": 70.0,
                    "busiest_other_cpu_percent": 60.0, "peak_rss_bytes": 3_000_000,
                    "worker_peak_rss_bytes": [3_000_000, 2_000_000]}
    empty = resource_columns({}, (), {0: None})
    assert empty == {"pinned_cpu_percent": None, "idlest_pinned_cpu_percent": None,
                     "busiest_other_cpu_percent": None, "peak_rss_bytes": None,
                     "worker_peak_rss_bytes": [None]}


def test_flag_notes_name_the_figures():
    row = {"metric": "ops", "cv": 0.123, "flags": ["unstable", "noisy", "underused"],
           "busiest_other_cpu_percent": 81.2, "idlest_pinned_cpu_percent": 12.4}
    assert flag_notes(row) == [
        "unstable: CV 12.3% of ops is above 5%; rerun with more --repetitions or --until-stable",
        "noisy: a CPU outside the plan was 81% busy (above 50%); other load shared the node",
        "underused: a planned CPU was only 12% busy (below 50%); the workload waited or was not pinned",
    ]
    assert flag_notes({"flags": []}) == []
    (lag,) = flag_notes({"flags": ["generator_bound"]})
    assert lag.startswith("generator_bound: the open-loop generator's send-lag p99 is over 10% of the latency p50")


def test_summary_notes_put_every_other_unstable_metric_on_one_line():
    from orchestrator.render.notes import summary_notes

    base = {"trial_id": "t", "workload": "net.http", "workers": 1, "status": "ok", "n": 10, "measure_s": 1.0}
    rows = [{**base, "metric": "requests_per_s", "cv": 0.02, "flags": ["noisy"], "busiest_other_cpu_percent": 70.0},
            {**base, "metric": "latency_p99_ms", "cv": 0.46, "flags": ["unstable"]},
            {**base, "metric": "latency_max_ms", "cv": 0.41, "flags": ["unstable", "noisy"]},
            {**base, "metric": "latency_p50_ms", "cv": 0.01, "flags": []}]
    lines = summary_notes(rows)
    assert lines[1:] == [("  requests_per_s: noisy: a CPU outside the plan was 70% busy (above 50%); other load "
                          "shared the node"),
                         "  unstable (CV over rounds above 5%): latency_p99_ms 46%, latency_max_ms 41%"]
