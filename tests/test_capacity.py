"""Capacity at a latency SLO: parsing, judging a step, the search, nodes needed; real searches on loopback."""

from __future__ import annotations

import math

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
    parse_load,
    parse_slos,
)
from orchestrator.cli import app
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


def test_nodes_needed_from_the_capacity_fit():
    linear = nodes_needed([1, 2, 3], [1000, 2000, 3000], [1000, 2000, 3000], [1100, 2200, 3300], 4500)
    assert (linear["n"], linear["n_low"], linear["n_high"], linear["model"]) == (5, 5, 5, "Amdahl")
    usl = [1000 * n / (1 + 0.1 * (n - 1) + 0.02 * n * (n - 1)) for n in (1, 2, 4, 8)]
    unreachable = nodes_needed([1, 2, 4, 8], usl, usl, [u * 1.05 for u in usl], 10 * max(usl))
    assert unreachable["n"] is None and unreachable["note"].startswith("cannot be met within the fitted peak N*")


def cap(tmp_path, *args: str):
    return CliRunner().invoke(app, ["capacity", "net.http", "--param", "net.http.concurrency=16",
                                    "--min-time", "0.1", "--resolution", "8%", "--results", str(tmp_path), *args])


@pytest.mark.ray
def test_a_server_of_known_capacity_is_found_and_twice_its_service_time_halves_it(ray_local, tmp_path):
    """One server thread, 2 ms per request: at most 500 requests/s; 4 ms: at most 250."""
    found, outputs = {}, []
    for service_ms in (2, 4):
        result = cap(tmp_path / str(service_ms), "--slo", "p99<=20ms", "--param", f"net.http.service_ms={service_ms}")
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
        (row,) = run_query(tmp_path / str(service_ms), "SELECT * FROM capacity").to_pylist()
        found[service_ms] = row["capacity_per_s"]
        assert row["status"] == "met" and row["latency_ci_high_at_capacity_ms"] <= 20
        steps = run_query(tmp_path / str(service_ms), "SELECT count(DISTINCT trial_id) AS n FROM trials")
        assert steps.to_pylist() == [{"n": row["steps"] + 1}]  # every step a stored trial, plus the closed loop
    # A step passes while 99% of the offered rate is served, so a rate up to 1/0.99 of the server's is a pass.
    top = 1 + BACKLOG_LIMIT
    assert 0.8 * 500 <= found[2] <= 500 * top and 0.8 * 250 <= found[4] <= 250 * top, outputs
    assert found[2] / found[4] == pytest.approx(2.0, rel=0.15)
    report = build_report(tmp_path / "2", "latest", tmp_path / "report")
    assert "capacity_net_http_1.png" in {p.name for p in report.images}
    assert "## Capacity at the SLO" in report.markdown.read_text()


@pytest.mark.ray
def test_an_slo_no_rate_meets_is_said_and_exits_1(ray_local, tmp_path):
    result = cap(tmp_path, "--slo", "p50<=1us", "--param", "net.http.service_ms=2", "--start-rate", "400")
    assert result.exit_code == 1, result.output
    assert "not met even at the lowest rate" in result.stdout
    (row,) = run_query(tmp_path, "SELECT steps, bracket_high_per_s, capacity_per_s FROM capacity").to_pylist()
    assert row == {"steps": 5, "bracket_high_per_s": 25.0, "capacity_per_s": None}  # 400 halved down to 1/16


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
