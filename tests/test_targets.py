"""Service-level targets: parsing, checking against trial medians, the pass/fail table."""

from __future__ import annotations

import pytest
from rich.console import Console

from orchestrator.analysis.targets import (
    Target,
    check_targets,
    parse_target,
    parse_targets,
    target_columns,
)
from orchestrator.render.run_tables import targets_table
from workloads.errors import UserError


def test_parse_all_operators_and_spacing():
    assert parse_target("memory.stream:triad_gbs>=20") == Target("memory.stream", "triad_gbs", ">=", 20.0)
    assert parse_target(" net.http : latency_p99_ms <= 25.5 ") == Target("net.http", "latency_p99_ms", "<=", 25.5)
    assert parse_target("cpu.sqrt_mod:element_ops_per_s>1e6").op == ">"
    assert parse_target("memory.random_access:ns_per_access@L1d<2").metric == "ns_per_access@L1d"
    assert str(parse_target("memory.stream:triad_gbs>=20")) == "memory.stream:triad_gbs>=20"


@pytest.mark.parametrize("text, message", [
    ("memory.stream triad_gbs>=20", "is not WORKLOAD:METRIC OP VALUE"),
    ("memory.stream:triad_gbs=>20", "is not WORKLOAD:METRIC OP VALUE"),
    ("memory.stream:triad_gbs>=fast", "'fast' is not a number"),
    ("nope.x:triad_gbs>=20", "Unknown workload 'nope.x'"),
    ("net.http:p99_ms<=25", "net.http has no metric 'p99_ms'; choose one of: requests_per_s"),
])
def test_parse_errors_name_the_input(text, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        parse_target(text)


def test_parse_without_registry_and_workload_must_be_in_the_run():
    assert parse_target("x.y:z<1", check_registry=False) == Target("x.y", "z", "<", 1.0)
    with pytest.raises(UserError, match="names memory.stream, which this run does not include"):
        parse_targets(["memory.stream:triad_gbs>=20"], workloads=["cpu.sqrt_mod"])
    assert len(parse_targets(["memory.stream:triad_gbs>=20"], workloads=["memory.stream"])) == 1


def _row(trial_id, workload, metric, median, status="ok", workers=1):
    return {"trial_id": trial_id, "workload": workload, "metric": metric, "median": median,
            "status": status, "unit": "GB/s", "workers": workers, "params": "{}"}


def test_check_targets_pass_fail_boundaries_and_missing():
    rows = [_row("t1", "memory.stream", "triad_gbs", 20.0), _row("t2", "memory.stream", "triad_gbs", 19.9, workers=2),
            _row("t3", "memory.stream", "copy_gbs", 5.0), _row("t4", "net.http", "latency_p99_ms", None, "failed")]
    ge = Target("memory.stream", "triad_gbs", ">=", 20)
    gt = Target("memory.stream", "triad_gbs", ">", 20)
    missing = Target("net.http", "latency_p99_ms", "<=", 25)
    results = check_targets([ge, gt, missing], rows)
    assert [(r.target.op, r.trial_id, r.passed) for r in results] == [
        (">=", "t1", True), (">=", "t2", False), (">", "t1", False), (">", "t2", False), ("<=", None, False)]
    assert results[-1].measured is None
    assert Target("a", "b", "<", 2).holds(1.0) and not Target("a", "b", "<=", 2).holds(2.1)
    assert target_columns(results) == {
        ("t1", "triad_gbs"): "memory.stream:triad_gbs>=20 pass; memory.stream:triad_gbs>20 fail",
        ("t2", "triad_gbs"): "memory.stream:triad_gbs>=20 fail; memory.stream:triad_gbs>20 fail"}


def test_targets_table_shows_pass_fail_and_not_measured():
    results = check_targets([Target("memory.stream", "triad_gbs", ">=", 20), Target("net.http", "latency_p99_ms", "<=", 25)],
                            [_row("t1", "memory.stream", "triad_gbs", 21.5)])
    console = Console(record=True, width=160)
    console.print(targets_table(results))
    text = console.export_text()
    assert "memory.stream:triad_gbs>=20" in text and "PASS" in text and "21.5" in text
    assert "net.http:latency_p99_ms<=25" in text and "not measured" in text and "FAIL" in text


def test_targets_on_a_real_run(ray_local, tmp_path):
    from dataset import run_query
    from typer.testing import CliRunner

    from orchestrator.cli import app

    result = CliRunner().invoke(app, ["run", "cpu.sqrt_mod", "--invocations", "1", "--repetitions", "5", "--min-time", "0.02",
                                      "--param", "cpu.sqrt_mod.elements=4096", "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = run_query(tmp_path, "SELECT * FROM trials").to_pylist()
    easy, impossible = parse_targets(["cpu.sqrt_mod:element_ops_per_s>=1", "cpu.sqrt_mod:element_ops_per_s>=1e15"])
    assert [r.passed for r in check_targets([easy, impossible], rows)] == [True, False]


def test_aggregate_targets_judge_all_workers_together():
    target = parse_target("aggregate:cpu.sqrt_mod:element_ops_per_s>=3e8")
    assert (target.figure, str(target)) == ("aggregate", "aggregate:cpu.sqrt_mod:element_ops_per_s>=3e+08")
    row = {**_row("t1", "cpu.sqrt_mod", "element_ops_per_s", 1.6e8, workers=2), "aggregate_median": 3.1e8}
    (per_worker,) = check_targets([parse_target("cpu.sqrt_mod:element_ops_per_s>=3e8")], [row])
    (together,) = check_targets([target], [row])
    assert (per_worker.passed, per_worker.measured) == (False, 1.6e8)
    assert (together.passed, together.measured) == (True, 3.1e8)
    with pytest.raises(UserError, match="only memory.stream's throughput stream_bytes_per_s has an aggregate"):
        parse_target("aggregate:memory.stream:triad_gbs>=20")


def test_targets_may_name_one_point_of_a_swept_metric():
    assert parse_target("cpu.c2c:one_way_ns@0-1<=200").metric == "one_way_ns@0-1"
    with pytest.raises(UserError, match="has no metric 'nope@0-1'"):
        parse_target("cpu.c2c:nope@0-1<=200")
