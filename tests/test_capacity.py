"""Capacity at a latency SLO: parsing, judging a step, the search, nodes needed; real searches on loopback."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from dataset import run_query
from typer.testing import CliRunner

from orchestrator.analysis.capacity import (
    BACKLOG_LIMIT,
    RateSearch,
    StepVerdict,
    judge_step,
    nodes_needed,
    parse_goal,
    parse_load,
    parse_slos,
    probe_rates,
    search_note,
)
from orchestrator.analysis.capacity_advice import rising_until, scale_steps
from orchestrator.cli import app
from orchestrator.render.capacity_view import capacity_lines
from orchestrator.render.report import build_report
from workloads.errors import UserError
from workloads.open_loop import backlog_growth


def test_slos_parse_and_name_what_is_wrong():
    (p99,) = parse_slos("p99<=5ms")
    assert (p99.percentile, p99.op, p99.threshold_ns) == ("p99", "<=", 5e6)
    assert [s.percentile for s in parse_slos("p50<1ms, p99.9 <= 20 ms,p90<300us")] == ["p50", "p999", "p90"]
    assert p99.holds(5e6) and not parse_slos("p99<5ms")[0].holds(5e6)
    for bad in ("p95<=5ms", "p99=5ms", "p99<=5", "p99<=-1ms", "p99<=fast ms", ""):
        with pytest.raises(UserError, match="--slo"):
            parse_slos(bad)
    assert parse_load("20000/s") == 20000.0 and parse_load("1.5e3") == 1500.0
    with pytest.raises(UserError, match="--load 'lots' is not a rate"):
        parse_load("lots")


def test_an_slo_that_bounds_one_percentile_twice_is_refused_and_the_generator_limit_names_its_bound():
    with pytest.raises(UserError) as twice:
        parse_slos("p99<=5ms,p99<=4ms")
    assert str(twice.value) == ("--slo 'p99<=5ms,p99<=4ms' bounds p99 twice (p99<=5ms, p99<=4ms); give each "
                                "percentile one bound, e.g. the tighter one alone.")
    with pytest.raises(UserError, match="bounds p99.9 twice"):
        parse_slos("p999<=9ms, p99.9<=8ms")
    with pytest.raises(UserError, match="^--slo 'p99<=-1ms': the threshold must be a positive number of ms.$"):
        parse_slos("p99<=-1ms")
    p50 = {"metric": "latency_p50_ms", "status": "ok", "error": None, "aggregate_throughput": None, "median": 0.5,
           "ci_high": 0.6}
    lagging = judge_step([*step_rows(1000, 1.0, 1.2, lag_ms=1.3), p50], parse_slos("p50<=20ms,p99<=4ms"), 1000)
    assert lagging.reason == "the generator fell behind (send-lag p99 1.3 ms, over 25% of p99<=4ms's 4 ms)"
    flagged = [{**r, "flags": ["generator_bound", "unstable", "noisy"]} for r in step_rows(1000, 1.0, 1.2)]
    assert judge_step(flagged, parse_slos("p99<=4ms"), 1000).disturbed == ("noisy", "unstable")


def test_a_value_of_the_right_kind_out_of_range_is_told_its_range():
    with pytest.raises(UserError) as load:
        parse_load("-5/s")
    assert str(load.value) == ("--load '-5/s' is out of range; give a finite rate above 0 requests per second, "
                               "such as 20000/s.")
    with pytest.raises(UserError) as resolution:
        parse_goal("p99<=5ms", "200%", 0.0)
    assert str(resolution.value) == ("--resolution '200%' is out of range; give a percentage above 0% and below "
                                     "100%, such as 5% or 0.05.")


def step_rows(achieved: float, p99_ms: float, high_ms: float | None, lag_ms: float = 0.01, status="ok",
              growth: float = 0.0):
    return [{"metric": "requests_per_s", "status": status, "error": None, "aggregate_throughput": achieved,
             "aggregate_median": achieved, "median": achieved, "ci_high": None},
            {"metric": "backlog_growth", "status": status, "error": None, "aggregate_throughput": None,
             "median": growth, "ci_high": None},
            {"metric": "latency_p99_ms", "status": status, "error": None, "aggregate_throughput": None,
             "median": p99_ms, "ci_high": high_ms},
            {"metric": "send_lag_p99_ms", "status": status, "error": None, "aggregate_throughput": None,
             "median": lag_ms, "ci_high": None}]


def test_a_step_passes_only_with_no_backlog_an_on_time_generator_and_a_bounded_percentile():
    slo = parse_slos("p99<=5ms")
    assert judge_step(step_rows(1000, 3.0, 4.0), slo, 1000).passed
    assert judge_step(step_rows(960, 3.0, 4.0), slo, 1000).passed  # a short sample's drain is no backlog
    backlog = judge_step(step_rows(980, 3.0, 4.0, growth=0.25), slo, 1000)
    assert not backlog.passed and "about 800/s of the 1000/s offered were served" in backlog.reason
    assert "upper bound 5.5 ms misses p99<=5ms" in judge_step(step_rows(1000, 4.0, 5.5), slo, 1000).reason
    assert "generator fell behind" in judge_step(step_rows(1000, 3.0, 4.0, lag_ms=2.0), slo, 1000).reason
    short = judge_step(step_rows(1000, 3.0, None), slo, 1000)
    assert not short.judged and "too short" in short.reason  # run again, longer; never judged on few requests


@pytest.mark.parametrize("served_share", [0.5, 0.9, 0.98])
def test_backlog_growth_reads_the_served_share_of_a_queue_and_zero_for_one_that_keeps_up(served_share):
    """A FIFO server (2 ms ± 10% each) offered capacity / share serves that share: latency grows 1/share - 1."""
    rng = np.random.default_rng(7)
    service_s, n = 0.002, 4000

    def latencies(rate: float, service) -> np.ndarray:
        due = np.arange(n) / rate
        done, free = np.empty(n), 0.0
        for i, t in enumerate(due):
            free = max(free, t) + service()
            done[i] = free
        return (done - due) * 1e9

    rate = 1 / service_s / served_share
    growth = backlog_growth(latencies(rate, lambda: service_s * rng.uniform(0.9, 1.1)), rate)
    assert growth == pytest.approx(1 / served_share - 1, rel=0.05)
    assert rate / (1 + growth) == pytest.approx(1 / service_s, rel=0.01)
    keeps_up = 0.8 / service_s  # 80% of capacity, exponential service times: queues come and go
    assert abs(backlog_growth(latencies(keeps_up, lambda: service_s * rng.exponential()), keeps_up)) < 0.01
    assert math.isnan(backlog_growth(np.ones(15), 100.0))


def test_the_search_ramps_then_bisects_to_the_resolution():
    capacity = 500.0
    search = RateSearch(start_per_s=40.0, resolution=0.05)
    offered = []
    while (rate := search.next_rate()) is not None:
        offered.append(rate)
        search.record(StepVerdict(rate, rate, rate <= capacity, True, "", {}))
    assert offered[:5] == [40, 80, 160, 320, 640]  # the ramp doubles until the first fail
    assert 0.95 * capacity <= search.passed_per_s <= capacity < search.failed_per_s
    assert (search.failed_per_s - search.passed_per_s) / search.passed_per_s <= 0.05


def test_a_failing_start_halves_down_to_a_pass_or_gives_up_at_a_sixteenth():
    search = RateSearch(start_per_s=400.0, resolution=0.05)
    offered = []
    while (rate := search.next_rate()) is not None:
        offered.append(rate)
        search.record(StepVerdict(rate, rate, rate <= 120.0, True, "", {}))
    assert offered[:3] == [400, 200, 100] and 0.95 * 120 <= search.passed_per_s <= 120
    never = RateSearch(start_per_s=400.0, resolution=0.05)
    offered = []
    while (rate := never.next_rate()) is not None:
        offered.append(rate)
        never.record(StepVerdict(rate, rate, False, True, "", {}))
    assert offered == [400, 200, 100, 50, 25] and never.passed_per_s is None


def run_search(search: RateSearch, passes) -> list[float]:
    """Drive ``search`` with synthetic verdicts (``passes(rate)``); return the rates it offered."""
    offered = []
    while (rate := search.next_rate()) is not None:
        offered.append(rate)
        search.record(StepVerdict(rate, rate, passes(rate), True, "" if passes(rate) else f"failed at {rate:g}", {}))
        assert len(offered) < 60, offered
    return offered


def test_a_noisy_low_rate_regime_is_probed_above_and_the_answer_is_marked_non_monotone():
    """The issue's case: low rates fail on noise, 150..12000/s pass; closed loop carried 12500/s."""
    search = RateSearch(start_per_s=100.0, resolution=0.05, reference_per_s=12500.0)
    offered = run_search(search, lambda rate: 150 <= rate <= 12000)
    assert offered[:8] == [100, 50, 25, 12.5, 6.25, 400, 800, 1600]  # descent, then a probe at 4x, then the ramp
    assert search.probes == [400.0]  # the probe passed: probing stops, the search goes on above it
    assert 0.95 * 12000 <= search.passed_per_s <= 12000 < search.failed_per_s
    assert search.non_monotone == (6.25, 12.5, 25.0, 50.0, 100.0)
    note = search_note(search)
    assert note.startswith("not monotone: 6.25/s, 12.5/s, 25/s, 50/s, 100/s failed below ")
    assert note.endswith("give more rounds per step, a longer min time or a looser percentile to trust the low steps.")


def test_what_limited_a_non_monotone_search_is_the_fail_above_its_capacity_not_the_noise_below():
    from orchestrator.pipeline.capacity import PointResult
    from orchestrator.records import DEFAULT_SHAPE

    point = PointResult(DEFAULT_SHAPE, 1, search=RateSearch(start_per_s=100.0, resolution=0.05,
                                                            reference_per_s=12500.0))
    run_search(point.search, lambda rate: 150 <= rate <= 12000)
    assert point.limit == f"failed at {point.search.failed_per_s:g}" and point.search.failed_per_s > 12000


def test_an_answer_far_below_closed_loop_is_probed_and_kept_when_the_probes_fail():
    search = RateSearch(start_per_s=100.0, resolution=0.05, reference_per_s=12500.0)
    run_search(search, lambda rate: rate <= 60)
    assert search.probes == [400.0, 1600.0, 6250.0]  # x4 from the highest rate offered, then half the closed loop
    assert 57 <= search.passed_per_s <= 60 and search.non_monotone == ()
    assert search_note(search) == ("the answer is 1/211 of the closed-loop 12,500/s, and probes above it, at 400/s, "
                                   "1,600/s, 6,250/s, failed too: at this SLO the system carries far less than closed "
                                   "loop.")
    search.steps[-1] = replace(search.steps[-1], disturbed=("noisy",))  # the last probe ran beside other load
    assert search_note(search).endswith("failed too, but they were flagged noisy: rerun on a quiet machine before "
                                        "trusting this answer.")


def test_a_monotone_answer_near_closed_loop_is_not_probed_nor_without_a_reference():
    near = RateSearch(start_per_s=3000.0, resolution=0.05, reference_per_s=12500.0)
    run_search(near, lambda rate: rate <= 5000)
    unchecked = RateSearch(start_per_s=100.0, resolution=0.05)
    run_search(unchecked, lambda rate: 150 <= rate <= 12000)
    assert near.probes == [] and unchecked.probes == [] and search_note(near) is None
    assert probe_rates(None, 400.0, 500.0) == ()  # nothing above the highest rate offered is below half of it
    assert probe_rates(None, 100.0, 500.0) == (250.0,)
    assert probe_rates(2000.0, 4000.0, 12500.0) == ()  # 2000 is over 1/8 of the closed loop


def test_nodes_needed_from_the_capacity_fit():
    linear = nodes_needed([1, 2, 3], [1000, 2000, 3000], [1000, 2000, 3000], [1100, 2200, 3300], 4500)
    assert (linear["n"], linear["n_low"], linear["n_high"], linear["model"]) == (5, 5, 5, "Amdahl")
    usl = [1000 * n / (1 + 0.1 * (n - 1) + 0.02 * n * (n - 1)) for n in (1, 2, 4, 8)]
    unreachable = nodes_needed([1, 2, 4, 8], usl, usl, [u * 1.05 for u in usl], 10 * max(usl))
    assert unreachable["n"] is None and unreachable["note"].startswith("cannot be met within the fitted peak N*")


def test_advice_follows_the_measured_capacities():
    """The issue's case: 1 worker carried 10.6 k/s, 2 workers 7.97 k/s; no step up is advised."""
    rows = [{"n": 1, "dimension": "workers", "slo": "p99<=5ms", "capacity_per_s": 10600.0,
             "bracket_high_per_s": 11000.0},
            {"n": 2, "dimension": "workers", "slo": "p99<=5ms", "capacity_per_s": 7970.0, "bracket_high_per_s": 8300.0}]
    needs = nodes_needed([1, 2], [10600, 7970], [10600, 7970], [11000, 8300], 20000)
    assert (needs["n"], needs["stops_at"]) == (None, 1)
    assert capacity_lines(rows, needs, 20000, "workers", "requests/s") == [
        ("At p99<=5ms: 2 workers carry less than 1 worker (7.97 k requests/s against 10.6 k requests/s): going from "
         "1 to 2 adds no capacity at this SLO."),
        ("A load of 20 k requests/s cannot be met at p99<=5ms: capacity stops rising after 1 worker and no worker "
         "count measured carries it.")]
    within = [{**rows[0]}, {**rows[1], "capacity_per_s": 10900.0, "bracket_high_per_s": 11500.0}]
    assert capacity_lines(within, None, None, "workers", "requests/s") == [
        ("At p99<=5ms: 2 workers carry no more than 1 worker within the search's brackets (10.9 k requests/s against "
         "10.6 k requests/s): going from 1 to 2 adds no capacity at this SLO.")]
    unmet = [{**rows[0]}, {**rows[1], "capacity_per_s": None, "bracket_high_per_s": 291.0}]
    needs = nodes_needed([1, 2], [10600, 0.0], [10600, 0.0], [11000, 291], 15000)  # as CapacitySearch.answer asks
    assert capacity_lines(unmet, needs, 15000, "workers", "requests/s") == [
        ("At p99<=5ms: 2 workers met it at no rate tried (not even 291 requests/s) while 1 worker carried 10.6 k "
         "requests/s: going from 1 to 2 adds no capacity at this SLO."),
        ("A load of 15 k requests/s cannot be met at p99<=5ms: capacity stops rising after 1 worker and no worker "
         "count measured carries it.")]
    rising = [{**rows[0]}, {**rows[1], "capacity_per_s": 19000.0, "bracket_high_per_s": 20000.0}]
    assert capacity_lines(rising, None, None, "workers", "requests/s") == [
        ("At p99<=5ms: scale up from 1 to 2 workers above 10.6 k requests/s; scale back down below 10.6 k requests/s "
         "(capacities measured, not assumed).")]


def test_an_n_that_met_no_rate_counts_as_no_capacity_in_what_a_load_needs():
    from orchestrator.analysis.capacity import CapacityGoal
    from orchestrator.pipeline.capacity import CapacitySearch, PointResult
    from orchestrator.records import DEFAULT_SHAPE
    from orchestrator.settings import Sampling

    search = CapacitySearch("net.http", {}, (DEFAULT_SHAPE,) * 2, "workers",
                            CapacityGoal(parse_slos("p99<=5ms"), load_per_s=15000.0), Sampling())
    for n, passes in ((1, lambda rate: rate <= 10600), (2, lambda rate: False)):
        search.results.append(PointResult(DEFAULT_SHAPE, n, search=RateSearch(4000.0, 0.05)))
        run_search(search.results[-1].search, passes)
    answer = search.answer()
    assert (answer["n"], answer["stops_at"]) == (None, 1)  # before: a line through 1 worker said 2 carry 15 k/s


def test_nodes_needed_never_names_an_n_its_measurements_deny():
    # Capacity falls at 2 and recovers at 3: a load of 12 k is carried by 3 (measured), never by 2.
    ns, caps, highs = [1, 2, 3], [10000.0, 8000.0, 15000.0], [10500.0, 8400.0, 15500.0]
    needs = nodes_needed(ns, caps, caps, highs, 12000)
    assert (needs["n"], needs["n_low"], needs["n_high"], needs["stops_at"]) == (3, 3, 3, 1)
    assert nodes_needed(ns, caps, caps, highs, 9000)["n"] == 1
    assert scale_steps(ns, caps, highs)[1].change == "adds" and rising_until(ns, scale_steps(ns, caps, highs)) == 1
    # Two points that rise: the line through the origin still extrapolates (as before this issue).
    assert nodes_needed([1, 2], [1000, 2000], [1000, 2000], [1050, 2100], 5000)["n"] == 5


def test_the_capacity_table_stores_the_monotonicity_check_and_older_files_read_null(tmp_path):
    import pyarrow as pa

    from orchestrator.store import layout, queries
    from orchestrator.store.reader import Dataset
    from orchestrator.store.schemas import CAPACITY_SCHEMA
    from orchestrator.store.writer import RunStore, write_atomic

    old, new = "20260101T000000Z-aaaaaa", "20260102T000000Z-bbbbbb"
    base = {"workload": "net.http", "params": "{}", "dimension": "workers", "n": 1, "slo": "p99<=4ms",
            "capacity_per_s": 12000.0, "bracket_low_per_s": 12000.0, "bracket_high_per_s": 12400.0,
            "steps": 14, "status": "met", "trial_ids": ["t1"]}
    added = ["non_monotone", "non_monotone_per_s", "probes_per_s", "note"]
    before = pa.Table.from_pylist([{**base, "run_id": old}], CAPACITY_SCHEMA).drop_columns(added)
    write_atomic(layout.run_file(tmp_path, "capacity", old), before, "capacity")  # written before this issue
    RunStore(tmp_path, new).write_capacity([{**base, "run_id": new, "non_monotone": True,
                                             "non_monotone_per_s": [50.0, 100.0], "probes_per_s": [400.0],
                                             "note": "not monotone: ..."}])
    dataset = Dataset(tmp_path)
    (was,) = queries.capacity(dataset, old)
    (now,) = queries.capacity(dataset, new)
    assert [was[c] for c in added] == [None, None, None, None] and was["capacity_per_s"] == 12000.0
    assert [now[c] for c in added] == [True, [50.0, 100.0], [400.0], "not monotone: ..."]


def cap(tmp_path, *args: str):
    return CliRunner().invoke(app, ["capacity", "net.http", "--param", "net.http.concurrency=16",
                                    "--min-time", "0.1", "--resolution", "8%", "--results", str(tmp_path), *args])


@pytest.mark.ray
def test_a_server_of_known_capacity_is_found_and_twice_its_service_time_halves_it(ray_local, tmp_path):
    """One server thread, 2 ms per request: at most 500 requests/s; 4 ms: at most 250."""
    found, outputs, checks = {}, [], {}
    for service_ms in (2, 4):
        result = cap(tmp_path / str(service_ms), "--slo", "p99<=20ms", "--param", f"net.http.service_ms={service_ms}")
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
        (row,) = run_query(tmp_path / str(service_ms), "SELECT * FROM capacity").to_pylist()
        found[service_ms] = row["capacity_per_s"]
        assert row["status"] == "met" and row["latency_ci_high_at_capacity_ms"] <= 20
        checks[service_ms] = (row["non_monotone"], row["non_monotone_per_s"], row["probes_per_s"], row["note"])
        steps = run_query(tmp_path / str(service_ms), "SELECT count(DISTINCT trial_id) AS n FROM trials")
        assert steps.to_pylist() == [{"n": row["steps"] + 1}]  # every step a stored trial, plus the closed loop
    # A step passes while 99% of the offered rate is served, so a rate up to 1/0.99 of the server's is a pass.
    top = 1 + BACKLOG_LIMIT
    assert 0.8 * 500 <= found[2] <= 500 * top and 0.8 * 250 <= found[4] <= 250 * top, outputs
    assert found[2] / found[4] == pytest.approx(2.0, rel=0.15)
    assert checks == {2: (False, [], [], None), 4: (False, [], [], None)}  # answers near closed loop: nothing to doubt
    report = build_report(tmp_path / "2", "latest", tmp_path / "report")
    assert "capacity_net_http_1.png" in {p.name for p in report.images}
    assert "## Capacity at the SLO" in report.markdown.read_text()


@pytest.mark.ray
def test_an_slo_no_rate_meets_is_probed_above_said_and_exits_1(ray_local, tmp_path):
    """From a given start rate the closed loop still runs: no answer at all is checked by a probe above."""
    result = cap(tmp_path, "--slo", "p50<=1us", "--param", "net.http.service_ms=2", "--start-rate", "100",
                 "--repetitions", "6")
    assert result.exit_code == 1, result.output
    assert "not met even at the lowest rate" in result.stdout
    (row,) = run_query(tmp_path, "SELECT * FROM capacity").to_pylist()
    assert (row["steps"], row["bracket_high_per_s"], row["capacity_per_s"]) == (6, 6.25, None)  # 100 halved to 1/16
    assert 200 < row["closed_loop_per_s"] <= 500 * (1 + BACKLOG_LIMIT), row  # one 2 ms server thread
    assert row["probes_per_s"] == [pytest.approx(row["closed_loop_per_s"] / 2)] and not row["non_monotone"]
    assert row["note"].startswith(f"no rate met the SLO, and probes above the rates tried, at "
                                  f"{row['probes_per_s'][0]:,.0f}/s, failed too")  # then what the flags say
    assert f"At 1 worker: {row['note']}" in " ".join(result.stdout.split())
    trials = run_query(tmp_path, "SELECT count(DISTINCT trial_id) AS n FROM trials").to_pylist()
    assert trials == [{"n": 7}]  # the closed loop, five descending steps and the probe


@pytest.mark.parametrize("args, fragment", [
    (["net.http", "--slo", "p95<=5ms"], "--slo 'p95<=5ms' is not PERCENTILE OP NUMBER UNIT"),
    (["cpu.sqrt_mod", "--slo", "p99<=5ms"],
     "cpu.sqrt_mod cannot be capacity-searched (it has no open-loop rate parameter); choose one of: db.sqlite, net.http."),
    (["net.http", "--slo", "p99<=5ms", "--workers", "1,1"], "--workers '1,1' is not a list of distinct counts"),
    (["net.http", "--slo", "p99<=5ms", "--resolution", "0"], "--resolution '0' must be above 0"),
    (["net.http", "--slo", "p99<=5ms", "--repetitions", "3"], "--repetitions 3 is too few for a capacity search"),
    (["net.http", "--slo", "p99<=5ms", "--param", "net.http.rate=100"],
     "--param net.http.rate is what the capacity search sets; remove it (--start-rate sets the first rate)."),
    (["net.http", "--slo", "p99<=5ms", "--start-rate", "0.01"], "--start-rate 0.01 must be a number of requests/s"),
])
def test_bad_capacity_input_is_one_sentence_before_any_work(tmp_path, args, fragment):
    result = CliRunner().invoke(app, ["capacity", *args, "--results", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr and not (tmp_path / "r").exists()


@pytest.mark.ray
def test_a_sweep_file_with_a_capacity_table_runs_the_search(ray_local, tmp_path):
    """The sweep path of the same search: one 4 ms server thread (at most 250/s) searched from 100/s."""
    file = tmp_path / "capacity.toml"
    file.write_text('workers_per_node = [1]\nmin_time = 0.1\n[workloads."net.http"]\nservice_ms = 4.0\n'
                    'concurrency = 8\n[capacity]\nslo = "p99<=40ms"\nstart_rate = 100\nresolution = "30%"\n'
                    'load = "400/s"\n')
    result = CliRunner().invoke(app, ["sweep", str(file), "--results", str(tmp_path / "r")], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    (row,) = run_query(tmp_path / "r", "SELECT * FROM capacity").to_pylist()
    assert row["status"] == "met" and row["dimension"] == "workers" and row["slo"] == "p99<=40ms"
    assert 0.6 * 250 <= row["capacity_per_s"] <= 250 * (1 + BACKLOG_LIMIT), result.output
    (run,) = run_query(tmp_path / "r", "SELECT spec FROM runs").to_pylist()
    assert '"capacity": {"load": 400.0' in run["spec"]
    assert "A load of 400 requests/s needs" in result.output  # one N: a line through the origin answers it
    dry = CliRunner().invoke(app, ["sweep", str(file), "--dry-run"], env={"COLUMNS": "300"})
    assert dry.exit_code == 0 and "each N's search starts open loop at 100/s" in dry.output, dry.output
