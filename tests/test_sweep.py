"""Sweep files: parsing, validation messages, expansion, order, seed, stable ids; scaling analysis."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow as pa
import pytest
from sysfs_builder import vm_no_smt
from typer.testing import CliRunner

from cluster.probe import NodeInfo
from cluster.topology import read_topology
from orchestrator.cli import app
from orchestrator.store import SCALING_SCHEMA, RunStore
from orchestrator.sweep import SweepSpec, expand, parse_sweep, sweep_points
from orchestrator.sweep_analysis import analyze, scaling_rows, trial_throughputs
from orchestrator.trial_stats import concurrent_throughput
from workloads.errors import UserError

BASE = {"workloads": {"cpu.sqrt_mod": {"elements": 1024}}}


def spec(**extra) -> SweepSpec:
    return parse_sweep({**BASE, **extra})


@pytest.fixture
def cluster4(tmp_path):
    """Four fake nodes of 4 CPUs each, the head last."""
    topo = read_topology(vm_no_smt(tmp_path, 4))
    return [NodeInfo(f"node{i}", f"host{i}", f"10.0.0.{i}", i == 3, 4, topo, {}) for i in range(4)]


def test_defaults_and_full_params():
    s = spec()
    assert s.workloads == ("cpu.sqrt_mod",)
    assert s.params["cpu.sqrt_mod"] == ({"elements": 1024, "modulus": 7.0},)
    assert (s.nodes, s.workers_per_node, s.placement, s.mode, s.order) == ((1,), (1,), ("compact",), "weak", "sequential")
    assert json.loads(s.to_json())["repetitions"] == 10


def test_scalars_become_one_value_lists_and_param_lists_sweep():
    s = parse_sweep({"workloads": {"cpu.sqrt_mod": {"elements": [1024, 2048]}}, "nodes": 2,
                     "placement": "spread", "min_time": 1})
    assert s.nodes == (2,) and s.placement == ("spread",) and s.min_time_s == 1.0
    assert [p["elements"] for p in s.params["cpu.sqrt_mod"]] == [1024, 2048]


@pytest.mark.parametrize("extra, message", [
    ({"node": [1]}, ("Unknown sweep key 'node'; use only: nodes, workers_per_node, placement, "
                    "threads_per_worker, workloads, mode, repetitions, min_time, warmup, order, seed, "
                    "reserve_cpus, scratch, targets, until_stable, max_time, rel_ci, max_cv.")),
    ({"nodes": [0, 1]}, ("Sweep key nodes = [0, 1] must be an integer >= 1 or a non-empty list of them, "
                        "e.g. nodes = [1, 2].")),
    ({"workers_per_node": []}, ("Sweep key workers_per_node = [] must be an integer >= 1 or a non-empty "
                               "list of them, e.g. workers_per_node = [1, 2].")),
    ({"nodes": [1, 1]}, "Sweep key nodes = [1, 1] repeats a value; list each value once."),
    ({"mode": "both"}, "Sweep key mode = 'both' is invalid; it must be one of weak, strong."),
    ({"order": "zigzag"}, ("Sweep key order = 'zigzag' is invalid; it must be one of sequential, "
                          "interleaved, random.")),
    ({"repetitions": 0}, "Sweep key repetitions = 0 is invalid; it must be an integer >= 1."),
    ({"min_time": "fast"}, "Sweep key min_time = 'fast' is invalid; it must be a number of seconds > 0."),
    ({"placement": []}, ("Sweep key placement = [] must be a placement name or a non-empty list of them, "
                        'e.g. placement = ["compact", "spread"].')),
    ({"targets": "x"}, ("Sweep key targets = 'x' must be a list of strings, "
                       'e.g. targets = ["cpu.sqrt_mod:element_ops_per_s>=1e8"].')),
    ({"workloads": {}}, ('Sweep key workloads is missing or empty; add a table per workload, '
                        'e.g. [workloads."cpu.sqrt_mod"] with its parameters.')),
    ({"workloads": {"cpu.sqrt_mod": {"size": 1}}}, ("Unknown parameter cpu.sqrt_mod.size; cpu.sqrt_mod "
                                                   "takes: elements, modulus.")),
    ({"workloads": {"cpu.sqrt_mod": {"elements": []}}}, ("Sweep parameter cpu.sqrt_mod.elements is an "
                                                        "empty list; give at least one value.")),
])
def test_validation_messages(extra, message):
    with pytest.raises(UserError) as info:
        parse_sweep({**BASE, **extra})
    assert str(info.value) == message


def test_unknown_workload_names_the_known_ones():
    with pytest.raises(UserError, match="Unknown workload 'cpu.nope'"):
        parse_sweep({"workloads": {"cpu.nope": {}}})


def test_sequential_order_is_nested_loops():
    s = spec(nodes=[1, 2], workers_per_node=[1, 2], placement=["compact", "spread"])
    got = [(p.nodes, p.workers_per_node, p.placement) for p in sweep_points(s)]
    assert got == [(n, w, pl) for n in (1, 2) for w in (1, 2) for pl in ("compact", "spread")]


def test_interleaved_alternates_series():
    s = parse_sweep({"workloads": {"cpu.sqrt_mod": {}, "cpu.matmul": {}}, "workers_per_node": [1, 2, 3],
                     "order": "interleaved"})
    got = [(p.workload, p.workers_per_node) for p in sweep_points(s)]
    assert got == [("cpu.sqrt_mod", 1), ("cpu.matmul", 1), ("cpu.sqrt_mod", 2), ("cpu.matmul", 2),
                   ("cpu.sqrt_mod", 3), ("cpu.matmul", 3)]
    assert all(a[0] != b[0] for a, b in itertools.pairwise(got))


def test_random_order_is_a_seeded_permutation():
    base = {"nodes": [1, 2, 3], "workers_per_node": [1, 2, 3], "order": "random"}
    a, b, c = sweep_points(spec(seed=7, **base)), sweep_points(spec(seed=7, **base)), sweep_points(spec(seed=8, **base))
    assert a == b and a != c
    assert sorted(map(repr, a)) == sorted(map(repr, sweep_points(spec(nodes=[1, 2, 3], workers_per_node=[1, 2, 3]))))


def test_expand_plans_every_point_with_stable_ids(cluster4):
    s = spec(nodes=[1, 2], workers_per_node=[1, 2])
    trials = expand(s, cluster4)
    assert [len(t.node_ids) for t in trials] == [1, 1, 2, 2]
    assert [len(t.slots) for t in trials] == [1, 2, 2, 4]
    assert trials[0].node_ids == ("node0",)  # non-head nodes first
    assert len({t.trial_id for t in trials}) == 4
    assert [t.trial_id for t in expand(s, cluster4)] == [t.trial_id for t in trials]
    shuffled = expand(spec(nodes=[1, 2], workers_per_node=[1, 2], order="random", seed=3), cluster4)
    assert sorted(t.trial_id for t in shuffled) == sorted(t.trial_id for t in trials)


def test_expand_refuses_too_many_nodes_before_work(cluster4):
    with pytest.raises(UserError, match=r"The plan needs 5 nodes but the cluster has 4 alive"):
        expand(spec(nodes=[1, 5]), cluster4)


def test_expand_refuses_too_many_cpus(cluster4):
    with pytest.raises(UserError, match="needs 8 CPUs on node host0"):
        expand(spec(workers_per_node=[1, 8]), cluster4)


def test_strong_mode_reaches_the_trials(cluster4):
    assert {t.mode for t in expand(spec(mode="strong", workers_per_node=[1, 2]), cluster4)} == {"strong"}


def _sample(tid, rank, rep, start_s, end_s, ops, warmup=False):
    return {"trial_id": tid, "worker_rank": rank, "repetition": rep, "warmup": warmup, "metric": "ops",
            "value": ops / (end_s - start_s), "ops": ops, "start_ns": int(start_s * 1e9), "end_ns": int(end_s * 1e9)}


def test_trial_throughputs_per_round():
    # Repetition 0: worker 0 runs 0-1 s (100 ops), worker 1 runs 0.5-2.5 s (200 ops): 300 ops
    # in a 2.5-s round = 120 ops/s (a sum of the rates would say 200). Repetition 1 is
    # aligned: 2 x 300 ops in 1 s. Repetition 2 lacks worker 1 and is dropped; warm-up ignored.
    rows = [_sample("t", 0, 0, 0.0, 1.0, 100), _sample("t", 1, 0, 0.5, 2.5, 200),
            _sample("t", 0, 1, 3.0, 4.0, 300), _sample("t", 1, 1, 3.0, 4.0, 300),
            _sample("t", 0, 2, 5.0, 6.0, 100), _sample("t", 0, -1, 0.0, 0.1, 1e6, warmup=True)]
    got = trial_throughputs(pa.Table.from_pylist(rows), "ops")
    np.testing.assert_allclose(got["t"], [120.0, 600.0])


def test_concurrency_overlap_is_the_least_aligned_worker():
    rows = [_sample("t", 0, 0, 0.0, 1.0, 100), _sample("t", 1, 0, 0.5, 2.5, 200),
            _sample("t", 0, 1, 3.0, 4.0, 300), _sample("t", 1, 1, 3.0, 4.0, 300)]
    together = concurrent_throughput(pa.Table.from_pylist(rows))
    # worker 1: 0.5 s of rep 0's 2 s plus all of rep 1's 1 s inside the windows = 1.5 / 3
    assert together.overlap == pytest.approx(0.5)
    # 300 ops in the 2.5-s round plus 600 in the 1-s round; the 0.5-s gap is not counted
    assert together.aggregate == pytest.approx(900 / 3.5)


def _trial_row(tid, nodes, workers, status="ok"):
    return {"trial_id": tid, "workload": "w", "params": "{}", "mode": "weak", "nodes": nodes,
            "workers": workers, "placement": "compact", "threads_per_worker": 1, "status": status}


def test_analyze_nodes_dimension_with_usl_fit():
    sigma, kappa, lam = 0.05, 0.002, 100.0
    usl = {n: lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1)) for n in (1, 2, 3, 4, 6)}
    throughputs = {f"t{n}": np.array([x * 0.99, x, x * 1.01]) for n, x in usl.items()}
    trials = [_trial_row(f"t{n}", n, n) for n in usl] + [_trial_row("bad", 8, 8, status="failed")]
    analyses = analyze(trials, throughputs, {"w": ("ops", "ops/s")})
    by_dim = {a.dimension: a for a in analyses}
    assert set(by_dim) == {"nodes"}  # each node count has one workers-per-node value
    a = by_dim["nodes"]
    assert [r.n for r in a.rows] == [1, 2, 3, 4, 6]
    assert a.usl is not None and a.usl.sigma == pytest.approx(sigma, abs=0.02)
    assert a.amdahl is not None and a.fit_note is None
    assert a.rows[1].efficiency == pytest.approx(usl[2] / usl[1] / 2)
    rows = scaling_rows("r", analyses)
    assert len(rows) == 5 and pa.Table.from_pylist(rows, SCALING_SCHEMA).num_rows == 5


def test_analyze_two_points_says_not_enough_points():
    trials = [_trial_row("a", 1, 1), _trial_row("b", 1, 2)]
    (a,) = analyze(trials, {"a": np.array([1.0, 1.0, 1.0]), "b": np.array([2.0, 2.0, 2.0])}, {"w": ("ops", "ops/s")})
    assert a.dimension == "workers" and a.series == "nodes=1 placement=compact threads_per_worker=1"
    assert a.amdahl is None and a.usl is None
    assert a.fit_note.startswith("not enough points: Amdahl fit needs at least 3 distinct N")
    assert a.verdict == "scales linearly to 2 workers (efficiency 1.00)"


def test_write_scaling_is_queryable(tmp_path):
    from orchestrator.query import run_query

    trials = [_trial_row("a", 1, 1), _trial_row("b", 1, 2)]
    analyses = analyze(trials, {"a": np.array([1.0, 1.0, 1.0]), "b": np.array([1.5, 1.5, 1.5])},
                       {"w": ("ops", "ops/s")})
    RunStore(tmp_path, "20261129T085512Z-1a2b3c").write_scaling(scaling_rows("20261129T085512Z-1a2b3c", analyses))
    table = run_query(tmp_path, "SELECT n, efficiency FROM scaling ORDER BY n")
    assert table.to_pylist() == [{"n": 1, "efficiency": 1.0}, {"n": 2, "efficiency": 0.75}]


def test_cli_bad_sweep_file_exits_2_with_one_line(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('order = "zigzag"\n[workloads."cpu.sqrt_mod"]\n')
    result = CliRunner().invoke(app, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 2
    assert "topobench: error: Sweep key order = 'zigzag' is invalid; it must be one of sequential, " \
           "interleaved, random." in result.output


def test_cli_missing_file_and_bad_resume(tmp_path):
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "none.toml")])
    assert result.exit_code == 2 and "cannot be read" in result.output
    path = tmp_path / "s.toml"
    path.write_text('[workloads."cpu.sqrt_mod"]\n')
    result = CliRunner().invoke(app, ["sweep", str(path), "--resume", "../x", "--results", str(tmp_path)])
    assert result.exit_code == 2 and "Run id '../x' is not valid" in result.output


def test_examples_parse():
    from pathlib import Path

    from orchestrator.sweep import load_sweep

    root = Path(__file__).parent.parent / "examples"
    for name in ("sweep-single-machine.toml", "sweep-cluster.toml"):
        assert sweep_points(load_sweep(root / name))


def test_cluster_stop_with_nothing_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("TOPOBENCH_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["cluster", "stop"])
    assert result.exit_code == 0 and "No local cluster is recorded" in result.output


def test_node_cpus_slices_or_none():
    from orchestrator.cluster_command import node_cpus

    assert node_cpus(2, 1, [0, 1]) == [(0,), (1,)]
    assert node_cpus(3, 1, [0, 1]) is None


def test_until_stable_settings_reach_the_runner():
    spec = parse_sweep({**BASE, "until_stable": True, "max_time": 5, "rel_ci": 0.1, "max_cv": 0.2})
    settings = spec.settings()
    assert (settings["until_stable"], settings["max_time_s"], settings["rel_ci"], settings["max_cv"]) == (
        True, 5.0, 0.1, 0.2)
    assert parse_sweep(BASE).settings()["until_stable"] is False


@pytest.mark.parametrize("targets, message", [
    (["cpu.sqrt_mod:nope>=1"], "nope"),
    (["memory.stream:triad_gbs>=1"], "memory.stream"),
    (["cpu.sqrt_mod.element_ops_per_s >= 1e8"], "cpu.sqrt_mod.element_ops_per_s"),  # '.' for ':'

])
def test_bad_targets_are_refused_at_parse_time(targets, message):
    with pytest.raises(UserError, match=message):
        parse_sweep({**BASE, "targets": targets})


@pytest.mark.ray
def test_sweep_checks_targets_and_exits_1_on_a_miss(ray_local, tmp_path):
    sweep_file = tmp_path / "s.toml"
    sweep_file.write_text('workers_per_node = [1, 2]\nrepetitions = 2\nmin_time = 0.02\nwarmup = 0\n'
                          'targets = ["cpu.sqrt_mod:element_ops_per_s>=1", "cpu.sqrt_mod:element_ops_per_s>=1e15"]\n'
                          '[workloads."cpu.sqrt_mod"]\nelements = 2048\n')
    result = CliRunner().invoke(app, ["sweep", str(sweep_file), "--results", str(tmp_path / "r")])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.stdout and "PASS" in result.stdout
    rows = pa.concat_tables(
        [__import__("pyarrow.parquet").parquet.read_table(f) for f in (tmp_path / "r" / "trials").rglob("*.parquet")]
    ).to_pylist()
    checked = [r["target"] for r in rows if r["metric"] == "element_ops_per_s"]
    assert len(checked) == 2 and all("pass" in t and "fail" in t for t in checked)


def test_resume_with_a_different_sweep_file_is_refused(tmp_path):
    from orchestrator.store import new_run_id
    from orchestrator.sweep_command import execute_sweep

    run_id = new_run_id()
    RunStore(tmp_path, run_id).write_run({"run_id": run_id, "spec": parse_sweep(BASE).to_json(),
                                          "status": "interrupted"})
    changed = parse_sweep({**BASE, "repetitions": 3})
    with pytest.raises(UserError, match=f"--resume {run_id}: this sweep file differs"):
        execute_sweep(changed, None, None, tmp_path, resume=run_id)
