"""What is stored for one trial, built without Ray: long samples, per-metric rows, aggregate, flags."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sysfs_builder import vm_no_smt

from cluster.resource_monitor import RESOURCE_COLUMNS
from cluster.topology import read_topology
from orchestrator.analysis.concurrency import concurrent_throughput
from orchestrator.analysis.flags import FlagThresholds
from orchestrator.analysis.targets import parse_target
from orchestrator.pipeline.record import (
    MeasuredTrial,
    WorkerResult,
    build_record,
    metric_rows,
)
from orchestrator.records import Shape, Trial, WorkerSlot
from orchestrator.settings import Sampling
from orchestrator.store.schemas import RESOURCES_SCHEMA, SAMPLES_SCHEMA
from workloads.base import Metric
from workloads.registry import get_workload

OPS = (Metric("ops_per_s", "ops/s"),)


def make_trial(workers: int = 1, workload: str = "w") -> Trial:
    slots = tuple(WorkerSlot(rank=r, node_id="n", cpus=(r,), pinned=True) for r in range(workers))
    return Trial(trial_id="t", workload=workload, params={}, shape=Shape(workers=workers), slots=slots)


def long_samples(reps: list[int], starts_s: list[float], ops: float = 100.0) -> pa.Table:
    n = len(reps)
    return pa.table({
        "metric": ["ops_per_s"] * n, "warmup": [False] * n, "worker_rank": [0] * n, "node_id": ["n"] * n,
        "hostname": ["h"] * n, "cpus": [[0]] * n,
        "repetition": reps, "value": [ops] * n, "ops": [int(ops)] * n,
        "start_ns": [int(s * 1e9) for s in starts_s], "end_ns": [int((s + 1) * 1e9) for s in starts_s],
    })


def test_gaps_between_repetitions_are_not_idle_time():
    # Four 1-s samples of 100 ops on the shared schedule, with a 10-s gap after the second
    # (e.g. two --until-stable batches): every repetition is its own window.
    samples = long_samples([0, 1, 2, 3], [0.0, 1.0, 12.0, 13.0])
    row = metric_rows("r", make_trial(), samples, OPS, {}, (), FlagThresholds())[0][0]
    assert row["aggregate_throughput"] == pytest.approx(100.0)
    assert row["overlap"] == 1.0


def test_trial_columns_and_flags_reach_every_row():
    samples = long_samples([0, 1, 2], [0.0, 1.0, 2.0])
    rows, _ = metric_rows("r", make_trial(), samples, OPS, {"stop_reason": "stable", "measure_s": 3.0},
                          ("underused", "cache_resident"), FlagThresholds())
    assert rows[0]["stop_reason"] == "stable" and rows[0]["measure_s"] == 3.0
    assert rows[0]["flags"] == ["underused", "cache_resident"]  # known flags in order, workload flags after
    assert rows[0]["placement"] == "compact" and rows[0]["mode"] == "weak"


def test_two_workers_out_of_step_are_flagged_desynchronized():
    rows = pa.table({"metric": ["ops_per_s"] * 2, "warmup": [False] * 2, "worker_rank": [0, 1],
                     "node_id": ["n"] * 2, "hostname": ["h"] * 2, "cpus": [[0], [1]],
                     "repetition": [0, 0], "value": [100.0, 100.0], "ops": [100, 100],
                     "start_ns": [0, int(0.5e9)], "end_ns": [int(1e9), int(1.5e9)]})
    row = metric_rows("r", make_trial(2), rows, OPS, {}, (), FlagThresholds())[0][0]
    assert row["overlap"] == pytest.approx(0.5) and "desynchronized" in row["flags"]


def _sample(rank, rep, start_s, end_s, ops):
    return {"worker_rank": rank, "repetition": rep, "warmup": False, "ops": ops,
            "start_ns": int(start_s * 1e9), "end_ns": int(end_s * 1e9)}


def test_concurrency_overlap_is_the_least_aligned_worker():
    rows = [_sample(0, 0, 0.0, 1.0, 100), _sample(1, 0, 0.5, 2.5, 200),
            _sample(0, 1, 3.0, 4.0, 300), _sample(1, 1, 3.0, 4.0, 300)]
    together = concurrent_throughput(pa.Table.from_pylist(rows))
    # worker 1: 0.5 s of rep 0's 2 s plus all of rep 1's 1 s inside the windows = 1.5 / 3
    assert together.overlap == pytest.approx(0.5)
    # 300 ops in the 2.5-s round plus 600 in the 1-s round; the 0.5-s gap is not counted
    assert together.aggregate == pytest.approx(900 / 3.5)
    np.testing.assert_allclose(together.per_repetition, [120.0, 600.0])


def wide(reps: int, ops: int, elapsed_ns: int, flags=(), warmups: int = 1, start_s: float = 0.0) -> pa.Table:
    """A worker's wide samples: ``warmups`` warm-ups (-W..-1), then ``reps`` rounds of 1 s apart."""
    numbers = list(range(-warmups, 0)) + list(range(reps))
    starts = [int((start_s + i) * 1e9) for i in range(len(numbers))]
    return pa.table({
        "repetition": numbers, "warmup": [n < 0 for n in numbers], "iterations": [10] * len(numbers),
        "ops": [ops] * len(numbers), "elapsed_ns": [elapsed_ns] * len(numbers), "start_ns": starts,
        "end_ns": [s + elapsed_ns for s in starts],
        "flags": pa.array([list(flags) if n >= 0 else [] for n in numbers], pa.list_(pa.string())),
    })


def resources(cpu: int, busy: float) -> pa.Table:
    return pa.table({"t_ns": [1, 1], "since_ns": [0, 1], "kind": ["cpu_percent", "rss_bytes"], "cpu": [cpu, None],
                     "value": [busy, 4e6]}, schema=RESOURCE_COLUMNS)


def test_build_record_is_the_whole_stored_trial(tmp_path):
    topology = read_topology(vm_no_smt(tmp_path, 2))
    trial = make_trial(2, "cpu.sqrt_mod")
    workers = (WorkerResult(0, "n", "host", (0,), True, wide(3, 1000, 1000), resources(0, 99.0), 0.5,
                            {0: 99.0, 1: 10.0}),  # the node's recording worker
               WorkerResult(1, "n", "host", (1,), True, wide(3, 1000, 1000, flags=("cache_resident",)),
                            resources(1, 10.0), 1.5))
    record = build_record("20261129T085512Z-1a2b3c", (MeasuredTrial(trial, workers, "repetitions", 3.2),),
                          {"n": topology}, get_workload("cpu.sqrt_mod"), Sampling(),
                          (parse_target("cpu.sqrt_mod:element_ops_per_s>=1e9"),))
    samples = record.tables["samples"]["n"]
    assert samples.schema.equals(SAMPLES_SCHEMA) and record.tables["resources"]["n"].schema.equals(RESOURCES_SCHEMA)
    assert samples.num_rows == 2 * 4  # 2 workers x (1 warm-up + 3 rounds), one metric
    assert set(samples["value"].to_pylist()) == {1e9}  # 1000 ops in 1 µs
    (row,) = record.rows
    assert (row["n"], row["median"], row["workers"], row["setup_s"], row["stop_reason"]) == (
        3, 1e9, 2, 1.5, "repetitions")  # n counts rounds, the independent unit
    assert row["ci_low"] is None and row["ci_level"] is None  # no 95% CI from 3 rounds
    assert [(w["worker_rank"], w["n"], w["median"]) for w in record.workers] == [(0, 3, 1e9), (1, 3, 1e9)]
    assert row["aggregate_throughput"] == pytest.approx(2e9) and row["overlap"] == 1.0
    assert row["flags"] == ["underused", "cache_resident"]  # CPU 1 was 10% busy; a sample flag joins
    assert row["target"] == "cpu.sqrt_mod:element_ops_per_s>=1e+09 pass"


def test_two_unequal_workers_are_each_reported_and_the_headline_is_their_round_mean(tmp_path):
    """The issue's 2-worker STREAM trial (15 vs 22 GB/s): no blended median that matches neither."""
    topology = read_topology(vm_no_smt(tmp_path, 2))
    rng = np.random.default_rng(4)
    slow = wide(8, 1000, 1000)
    fast = wide(8, 1000, 1000)
    # Per round, worker 0 moves 15 and worker 1 22 units of work per µs, 1% noise each.
    slow = slow.set_column(3, "ops", pa.array([int(15_000 * (1 + 0.01 * rng.standard_normal())) for _ in range(9)]))
    fast = fast.set_column(3, "ops", pa.array([int(22_000 * (1 + 0.01 * rng.standard_normal())) for _ in range(9)]))
    workers = (WorkerResult(0, "n", "h", (0,), True, slow, resources(0, 99.0)),
               WorkerResult(1, "n", "h", (1,), True, fast, resources(1, 99.0)))
    record = build_record("20261129T085512Z-1a2b3c", (MeasuredTrial(make_trial(2, "cpu.sqrt_mod"), workers,
                                                                   "repetitions", 9.0),),
                          {"n": topology}, get_workload("cpu.sqrt_mod"), Sampling())
    (row,) = record.rows
    per_worker = {w["worker_rank"]: w for w in record.workers}
    assert per_worker[0]["median"] == pytest.approx(15e9, rel=0.02)
    assert per_worker[1]["median"] == pytest.approx(22e9, rel=0.02)
    assert row["median"] == pytest.approx(18.5e9, rel=0.02) and row["n"] == 8
    assert row["ci_low"] < row["median"] < row["ci_high"] and row["ci_level"] == 0.95
    assert row["aggregate_median"] == pytest.approx(37e9, rel=0.02)
    assert row["aggregate_ci_low"] < row["aggregate_median"] < row["aggregate_ci_high"]


@pytest.mark.parametrize("skew_ms", [30, -30])
def test_a_skewed_node_clock_is_corrected_before_rounds_are_lined_up(tmp_path, skew_ms):
    """Node B's clock runs 30 ms off; its stamps, on its own clock, would misstate aggregate and overlap."""
    import time

    from cluster.clock import SAME_CLOCK, measure_offset

    skew = skew_ms * 1_000_000
    topology = read_topology(vm_no_smt(tmp_path, 2))
    a = wide(8, 1000, 100_000_000)  # 100 ms samples, truly started together each second
    b = wide(8, 1000, 100_000_000)
    b = b.set_column(b.schema.get_field_index("start_ns"), "start_ns", pa.array([t + skew for t in b["start_ns"].to_pylist()]))
    b = b.set_column(b.schema.get_field_index("end_ns"), "end_ns", pa.array([t + skew for t in b["end_ns"].to_pylist()]))
    offset = measure_offset(lambda: time.time_ns() + skew)  # B's clock, as the driver sees it through calls
    trial = make_trial(2, "cpu.sqrt_mod")

    def row(clock_b):
        workers = (WorkerResult(0, "n", "h", (0,), True, a, resources(0, 99.0), clock=SAME_CLOCK),
                   WorkerResult(1, "n", "h", (1,), True, b, resources(1, 99.0), clock=clock_b))
        record = build_record("20261129T085512Z-1a2b3c", (MeasuredTrial(trial, workers, "repetitions", 8.0),),
                              {"n": topology}, get_workload("cpu.sqrt_mod"), Sampling())
        return record.rows[0], record.tables["samples"]["n"]

    truth = 2000 / 0.1  # both workers' ops over each 100-ms round
    corrected, stored = row(offset)
    raw, _ = row(SAME_CLOCK)
    assert corrected["aggregate_throughput"] == pytest.approx(truth, rel=0.02)
    assert corrected["overlap"] == pytest.approx(1.0, abs=0.02) and "desynchronized" not in corrected["flags"]
    assert raw["aggregate_throughput"] == pytest.approx(truth / 1.3, rel=0.02) and raw["overlap"] == pytest.approx(0.7)
    assert "clock_uncertain" not in corrected["flags"]  # microseconds of uncertainty against 100 ms samples
    offsets = set(stored.filter(pa.compute.equal(stored["worker_rank"], 1))["clock_offset_ns"].to_pylist())
    assert offsets == {offset.offset_ns}


def test_an_offset_known_worse_than_1_percent_of_a_sample_is_flagged(tmp_path):
    from cluster.clock import ClockOffset

    topology = read_topology(vm_no_smt(tmp_path, 2))
    workers = (WorkerResult(0, "n", "h", (0,), True, wide(6, 1000, 10_000_000), resources(0, 99.0),
                            clock=ClockOffset(0, 500_000, 16)),)  # ±0.5 ms against 10 ms samples
    record = build_record("20261129T085512Z-1a2b3c", (MeasuredTrial(make_trial(1, "cpu.sqrt_mod"), workers,
                                                                   "repetitions", 6.0),),
                          {"n": topology}, get_workload("cpu.sqrt_mod"), Sampling())
    assert "clock_uncertain" in record.rows[0]["flags"]


def test_a_trial_of_invocations_is_the_median_of_their_figures(tmp_path):
    """Three invocations of 2 rounds at 1, 2 and 4 x 1e9: figure 2e9, a t interval over the 3, partial of 5."""
    from orchestrator.analysis.invocations import summarize_invocations

    topology = read_topology(vm_no_smt(tmp_path, 2))
    trial = make_trial(1, "cpu.sqrt_mod")
    invocations = []
    for k, elapsed in enumerate((1000, 500, 250)):
        worker = WorkerResult(0, "n", "host", (0,), True, wide(2, 1000, elapsed, start_s=10.0 * k),
                              resources(0, 99.0), 0.5, {0: 99.0, 1: 10.0})
        invocations.append(MeasuredTrial(trial, (worker,), "repetitions", 2.0, invocation=k, overhead_s=1.0,
                                         iterations=10))
    record = build_record("20261129T085512Z-1a2b3c", invocations, {"n": topology}, get_workload("cpu.sqrt_mod"),
                          Sampling(), planned=5)
    samples = record.tables["samples"]["n"]
    assert sorted(set(samples["invocation"].to_pylist())) == [0, 1, 2]
    (row,) = record.rows
    expected = summarize_invocations([[1e9] * 2, [2e9] * 2, [4e9] * 2])
    assert (row["median"], row["n"], row["invocations"], row["invocations_planned"]) == (2e9, 6, 3, 5)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((expected.ci_low, expected.ci_high))
    assert row["ci_method"] == "t over invocations" and "partial" in row["flags"]
    assert row["sd_between_invocations"] == pytest.approx(np.log(2), rel=0.01)  # log-scale sd of 1, 2, 4
    assert row["sd_between_rounds"] == 0.0 and row["invocation_cost_s"] == 1.0
    assert row["round_cost_s"] == pytest.approx(6.0 / 6) and row["measure_s"] == 6.0


def test_two_invocations_state_no_ci_and_one_invocation_is_as_before(tmp_path):
    topology = read_topology(vm_no_smt(tmp_path, 2))
    trial = make_trial(1, "cpu.sqrt_mod")

    def invocation(k, reps):
        worker = WorkerResult(0, "n", "host", (0,), True, wide(reps, 1000, 1000 + 10 * k), resources(0, 99.0))
        return MeasuredTrial(trial, (worker,), "repetitions", 1.0, invocation=k)

    two = build_record("r", [invocation(0, 8), invocation(1, 8)], {"n": topology}, get_workload("cpu.sqrt_mod"),
                       Sampling())
    assert two.rows[0]["ci_low"] is None and two.rows[0]["invocations"] == 2
    one = build_record("r", [invocation(0, 8)], {"n": topology}, get_workload("cpu.sqrt_mod"), Sampling())
    row = one.rows[0]
    assert row["ci_method"] == "round bootstrap" and row["invocations"] == 1 and row["ci_low"] == row["median"]
