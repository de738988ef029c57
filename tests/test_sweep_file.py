"""Sweep files: parsing, validation messages, points, order, seed, stable ids, planning; the CLI."""

from __future__ import annotations

import itertools
import json

import pyarrow as pa
import pytest
from sysfs_builder import vm_no_smt
from typer.testing import CliRunner

from cluster.nodes import NodeInfo
from cluster.topology import read_topology
from orchestrator.cli import app
from orchestrator.pipeline.planner import plan_trials
from orchestrator.pipeline.sweep_file import SweepSpec, load_sweep, parse_sweep
from orchestrator.settings import Mode
from orchestrator.store.layout import new_run_id
from orchestrator.store.writer import RunStore
from workloads.errors import UserError

BASE = {"workloads": {"cpu.sqrt_mod": {"elements": 1024}}}


def spec(**extra) -> SweepSpec:
    return parse_sweep({**BASE, **extra})


def points(s: SweepSpec):
    return s.points()


def plan(s: SweepSpec, nodes):
    return plan_trials(s.points(), nodes)


@pytest.fixture
def cluster4(tmp_path):
    """Four fake nodes of 4 CPUs each, the head last."""
    topo = read_topology(vm_no_smt(tmp_path, 4))
    return [NodeInfo(f"node{i}", f"host{i}", f"10.0.0.{i}", i == 3, 4, topo, {}) for i in range(4)]


def test_defaults_and_full_params():
    s = spec()
    assert s.workloads == ("cpu.sqrt_mod",)
    assert s.params["cpu.sqrt_mod"] == ({"elements": 1024, "modulus": 7.0},)
    assert (s.nodes, s.workers_per_node, tuple(map(str, s.placement)), s.mode.value, s.order.value) == (
        (1,), (1,), ("compact",), "weak", "sequential")
    assert json.loads(s.to_json())["sampling"]["repetitions"] == 3  # rounds per invocation
    assert json.loads(s.to_json())["sampling"]["invocations"] == 5


def test_scalars_become_one_value_lists_and_param_lists_sweep():
    s = parse_sweep({"workloads": {"cpu.sqrt_mod": {"elements": [1024, 2048]}}, "nodes": 2,
                     "placement": "spread", "min_time": 1})
    assert s.nodes == (2,) and str(s.placement[0]) == "spread" and s.sampling.min_time_s == 1.0
    assert [p["elements"] for p in s.params["cpu.sqrt_mod"]] == [1024, 2048]


@pytest.mark.parametrize("extra, message", [
    ({"node": [1]}, ("Unknown sweep key 'node'; use only: nodes, workers_per_node, placement, "
                    "threads_per_worker, workloads, mode, invocations, repetitions, warmup, min_time, until_stable, "
                    "max_time, rel_ci, max_cv, resource_interval, scratch, lock, lock_timeout, trial_timeout, "
                    "order, seed, reserve_cpus, targets, capacity.")),
    ({"nodes": [0, 1]}, ("Sweep key nodes = [0, 1] must be an integer >= 1 or a non-empty list of them, "
                        "e.g. nodes = [1, 2].")),
    ({"workers_per_node": []}, ("Sweep key workers_per_node = [] must be an integer >= 1 or a non-empty "
                               "list of them, e.g. workers_per_node = [1, 2].")),
    ({"nodes": [1, 1]}, "Sweep key nodes = [1, 1] repeats a value; list each value once."),
    ({"mode": "both"}, "Sweep key mode = 'both' is invalid; it must be one of weak, strong."),
    ({"order": "zigzag"}, ("Sweep key order = 'zigzag' is invalid; it must be one of sequential, "
                          "interleaved, random.")),
    ({"repetitions": 0}, "Sweep key repetitions = 0 is invalid; it must be at least 1."),
    ({"min_time": "fast"}, "Sweep key min_time = 'fast' is invalid; it must be a number."),
    ({"min_time": 0}, "Sweep key min_time = 0.0 is invalid; it must be more than 0 seconds."),
    ({"max_time": float("inf")}, "Sweep key max_time = inf is invalid; it must be a finite number."),
    ({"placement": ["0-99999999999"]}, ("Placement '0-99999999999' names CPU 99999999999, above the largest "
                                       "CPU number Linux supports (8191); list CPUs that exist "
                                       "(`topobench topology` shows them).")),
    ({"placement": "nowhere"}, ("Unknown placement 'nowhere'; use one of compact, spread, cores, largest-l3, "
                               "none or a likwid-style CPU expression such as 0,2-5, N:0-3, S0:0-3, M0:0-3 "
                               "or C1:0-3.")),
    ({"workloads": {"cpu.sqrt_mod": {"modulus": [7, 7.0]}}}, (
        "Sweep parameters of cpu.sqrt_mod repeat a value once parsed (e.g. 7 and 7.0); list each value once.")),
    ({"workloads": {"cpu.sqrt_mod": {"modulus": float("nan")}}}, (
        "Parameter cpu.sqrt_mod.modulus=nan is not a finite number; give a finite float such as 7.0.")),
    ({"workers_per_node": list(range(1, 101)), "nodes": list(range(1, 101)), "threads_per_worker": [1, 2]}, (
        "The sweep matrix has 20,000 trials, more than --max-trials 10,000; sweep fewer values, or raise "
        "--max-trials if you mean it.")),
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


HTTP = {"workloads": {"net.http": {"service_ms": 2.0}}}


def test_a_capacity_table_makes_the_sweep_a_capacity_search_over_the_varied_n():
    s = parse_sweep({**HTTP, "nodes": [1, 2], "capacity": {"slo": "p99<=5ms,p50<1ms", "load": 900, "resolution": 0.1,
                                                         "start_rate": 50}})
    search = s.capacity_search()
    assert (search.workload, search.dimension, [(x.workers, x.nodes) for x in search.shapes]) == (
        "net.http", "nodes", [(1, 1), (1, 2)])
    assert [str(x) for x in search.goal.slos] == ["p99<=5ms", "p50<1ms"]
    assert (search.goal.load_per_s, search.goal.resolution, search.goal.start_per_s) == (900.0, 0.1, 50.0)
    assert search.params["service_ms"] == 2.0 and search.sampling.repetitions == 10
    assert json.loads(s.to_json())["capacity"] == {"slo": "p99<=5ms, p50<1ms", "resolution": 0.1,
                                                   "start_rate": 50.0, "load": 900.0}
    workers = parse_sweep({**HTTP, "workers_per_node": [1, 2, 4], "capacity": {"slo": "p99<=5ms"}}).capacity_search()
    assert workers.dimension == "workers" and [x.workers for x in workers.shapes] == [1, 2, 4]
    assert (workers.goal.resolution, workers.goal.start_per_s, workers.goal.load_per_s) == (0.05, 0.0, None)
    assert parse_sweep(BASE).capacity is None and "capacity" not in json.loads(parse_sweep(BASE).to_json())
    harmless = parse_sweep({**HTTP, "targets": [], "until_stable": False, "order": "sequential", "mode": "weak",
                            "capacity": {"slo": "p99<=5ms", "start_rate": "500/s"}})
    assert harmless.capacity.start_per_s == 500.0


@pytest.mark.parametrize("extra, message", [
    ({"capacity": "p99<=5ms"}, 'Sweep key capacity must be a table; write [capacity] followed by slo = "p99<=5ms".'),
    ({"capacity": {"slo": "p99<=5ms", "rate": 1}}, (
        "Unknown sweep key capacity.rate; use only: slo, resolution, start_rate, load.")),
    ({"capacity": {"load": "1/s"}}, ('Sweep key capacity.slo is missing or not a string; give the latency '
                                     'objective, e.g. slo = "p99<=5ms".')),
    ({"capacity": {"slo": "p95<=5ms"}}, ("Sweep key capacity.slo = 'p95<=5ms' is not PERCENTILE OP NUMBER UNIT; "
                                         'write it like "p99<=5ms" (percentiles p50, p90, p99, p99.9; < or <=; '
                                         "units ns, us, ms, s; several joined by ',').")),
    ({"capacity": {"slo": "p99<=5ms", "resolution": 0}}, (
        "Sweep key capacity.resolution = '0' must be above 0, e.g. 5%.")),
    ({"capacity": {"slo": "p99<=5ms", "start_rate": 0.5}}, (
        "Sweep key capacity.start_rate = 0.5 must be a number of requests/s: 0 (a quarter of the closed-loop "
        "rate) or at least 1, e.g. 500.")),
    ({"capacity": {"slo": "p99<=5ms", "start_rate": True}}, (
        "Sweep key capacity.start_rate = True must be a number of requests/s: 0 (a quarter of the closed-loop "
        "rate) or at least 1, e.g. 500.")),
    ({"capacity": {"slo": "p99<=5ms", "start_rate": "fast"}}, (
        "Sweep key capacity.start_rate = 'fast' is not a rate; give requests per second such as 20000/s.")),
    ({"capacity": {"slo": "p99<=5ms", "repetitions": 10}}, (
        "Sweep key repetitions is inside the [capacity] table; move it above [capacity].")),
    ({"workloads": {"net.http": {"rate": 500}}, "capacity": {"slo": "p99<=5ms"}}, (
        "Sweep parameter net.http.rate is what the capacity search sets; remove it (capacity.start_rate sets "
        "the first rate).")),
    ({"order": "random", "capacity": {"slo": "p99<=5ms"}}, (
        "Sweep key order = 'random' does not apply to a capacity sweep (the search takes each N in turn); "
        "remove it.")),
    ({"invocations": 3, "capacity": {"slo": "p99<=5ms"}}, (
        "Sweep key invocations = 3 does not apply to a capacity sweep (each step is judged on the rounds of one "
        "invocation); remove it.")),
    ({"invocations": 0}, "Sweep key invocations = 0 is invalid; it must be at least 1."),
    ({"until_stable": True, "capacity": {"slo": "p99<=5ms"}}, (
        "Sweep key until_stable = True does not apply to a capacity sweep (every step runs its rounds in full); "
        "remove it.")),
    ({"capacity": {"slo": "p99<=5ms", "load": "lots"}}, (
        "Sweep key capacity.load = 'lots' is not a rate; give requests per second such as 20000/s.")),
    ({"capacity": {"slo": "p99<=5ms", "load": [1]}}, "Sweep key capacity.load = [1] must be a string or a number."),
    ({"nodes": [1, 2], "workers_per_node": [1, 2], "capacity": {"slo": "p99<=5ms"}}, (
        "Sweep keys nodes and workers_per_node both list several values; a capacity sweep searches over one "
        "of them at a time.")),
    ({"placement": ["compact", "spread"], "capacity": {"slo": "p99<=5ms"}}, (
        "Sweep key placement lists several values; a capacity sweep searches one value of placement.")),
    ({"targets": ["net.http:requests_per_s>=1"], "capacity": {"slo": "p99<=5ms"}}, (
        "Sweep key targets = ['net.http:requests_per_s>=1'] does not apply to a capacity sweep (steps are judged "
        "by capacity.slo); remove it.")),
    ({"mode": "strong", "capacity": {"slo": "p99<=5ms"}}, (
        "Sweep key mode = 'strong' does not apply to a capacity sweep (the search splits the offered rate "
        "among the workers itself); remove it.")),
    ({"repetitions": 5, "capacity": {"slo": "p99<=5ms"}}, (
        "Sweep key repetitions = 5 is too few for a capacity search: an upper 95% bound of a percentile needs "
        "at least 6 rounds per step.")),
    ({"workloads": {"net.http": {"service_ms": [1.0, 2.0]}}, "capacity": {"slo": "p99<=5ms"}}, (
        'A capacity sweep searches one parameter set; [workloads."net.http"] lists several values: write one '
        "sweep file per value.")),
    ({"workloads": {"net.http": {}, "db.sqlite": {}}, "capacity": {"slo": "p99<=5ms"}}, (
        "A capacity sweep searches one workload; the file lists 2 (net.http, db.sqlite): write one sweep file "
        "per workload.")),
    ({"workloads": {"cpu.sqrt_mod": {}}, "capacity": {"slo": "p99<=5ms"}}, (
        "cpu.sqrt_mod cannot be capacity-searched (it has no open-loop rate parameter); choose one of: "
        "db.sqlite, net.http.")),
])
def test_capacity_table_messages(extra, message):
    with pytest.raises(UserError) as info:
        parse_sweep({**HTTP, **extra})
    assert str(info.value) == message


def test_cli_capacity_sweep_refuses_resume(tmp_path):
    file = tmp_path / "cap.toml"
    file.write_text('[workloads."net.http"]\n[capacity]\nslo = "p99<=5ms"\n')
    result = CliRunner().invoke(app, ["sweep", str(file), "--resume", "x", "--results", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "--resume does not apply to a sweep with a [capacity] table" in result.stderr
    assert not (tmp_path / "r").exists()


def test_unknown_workload_names_the_known_ones():
    with pytest.raises(UserError, match="Unknown workload 'cpu.nope'"):
        parse_sweep({"workloads": {"cpu.nope": {}}})


def test_sequential_order_is_nested_loops():
    s = spec(nodes=[1, 2], workers_per_node=[1, 2], placement=["compact", "spread"])
    got = [(p.shape.nodes, p.shape.workers, str(p.shape.placement)) for p in points(s)]
    assert got == [(n, w, pl) for n in (1, 2) for w in (1, 2) for pl in ("compact", "spread")]


def test_interleaved_alternates_series():
    s = parse_sweep({"workloads": {"cpu.sqrt_mod": {}, "cpu.matmul": {}}, "workers_per_node": [1, 2, 3],
                     "order": "interleaved"})
    got = [(p.workload, p.shape.workers) for p in points(s)]
    assert got == [("cpu.sqrt_mod", 1), ("cpu.matmul", 1), ("cpu.sqrt_mod", 2), ("cpu.matmul", 2),
                   ("cpu.sqrt_mod", 3), ("cpu.matmul", 3)]
    assert all(a[0] != b[0] for a, b in itertools.pairwise(got))


def test_random_order_is_a_seeded_permutation():
    base = {"nodes": [1, 2, 3], "workers_per_node": [1, 2, 3], "order": "random"}
    a, b, c = points(spec(seed=7, **base)), points(spec(seed=7, **base)), points(spec(seed=8, **base))
    assert a == b and a != c
    assert sorted(map(repr, a)) == sorted(map(repr, points(spec(nodes=[1, 2, 3], workers_per_node=[1, 2, 3]))))


def test_expand_plans_every_point_with_stable_ids(cluster4):
    s = spec(nodes=[1, 2], workers_per_node=[1, 2])
    trials = plan(s, cluster4)
    assert [len(t.node_ids) for t in trials] == [1, 1, 2, 2]
    assert [len(t.slots) for t in trials] == [1, 2, 2, 4]
    assert trials[0].node_ids == ("node0",)  # non-head nodes first
    assert len({t.trial_id for t in trials}) == 4
    assert [t.trial_id for t in plan(s, cluster4)] == [t.trial_id for t in trials]
    shuffled = plan(spec(nodes=[1, 2], workers_per_node=[1, 2], order="random", seed=3), cluster4)
    assert sorted(t.trial_id for t in shuffled) == sorted(t.trial_id for t in trials)


def test_expand_refuses_too_many_nodes_before_work(cluster4):
    with pytest.raises(UserError, match=r"The plan needs 5 nodes but the cluster has 4 alive"):
        plan(spec(nodes=[1, 5]), cluster4)


def test_expand_refuses_too_many_cpus(cluster4):
    with pytest.raises(UserError, match="need 8 CPUs on node host0"):
        plan(spec(workers_per_node=[1, 8]), cluster4)


def test_strong_mode_reaches_the_trials(cluster4):
    assert {t.shape.mode for t in plan(spec(mode="strong", workers_per_node=[1, 2]), cluster4)} == {Mode.STRONG}


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

    root = Path(__file__).parent.parent / "examples"
    for name in ("sweep-single-machine.toml", "sweep-cluster.toml", "sweep-capacity.toml"):
        assert points(load_sweep(root / name))
    assert [s.workers for s in load_sweep(root / "sweep-capacity.toml").capacity_search().shapes] == [1, 2]


def test_cluster_stop_with_nothing_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("TOPOBENCH_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["cluster", "stop"])
    assert result.exit_code == 0 and "No local cluster is recorded" in result.output


def test_node_cpus_slices_or_none():
    from cluster.local_cluster import node_cpus

    assert node_cpus(2, 1, [0, 1]) == [(0,), (1,)]
    assert node_cpus(3, 1, [0, 1]) is None


def test_invocations_reach_the_runner_and_a_capacity_search_takes_one():
    assert parse_sweep({**BASE, "invocations": 7}).sampling.invocations == 7
    capacity = parse_sweep({"workloads": {"net.http": {}}, "capacity": {"slo": "p99<=5ms"}}).capacity_search()
    assert capacity.sampling.invocations == 1


def test_until_stable_settings_reach_the_runner():
    spec = parse_sweep({**BASE, "until_stable": True, "max_time": 5, "rel_ci": 0.1, "max_cv": 0.2})
    s = spec.sampling
    assert (s.until_stable, s.max_time_s, s.rel_ci, s.max_cv) == (True, 5.0, 0.1, 0.2)
    assert parse_sweep(BASE).sampling.until_stable is False


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
    sweep_file.write_text('workers_per_node = [1, 2]\ninvocations = 1\nrepetitions = 2\nmin_time = 0.02\nwarmup = 0\n'
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
    from orchestrator.pipeline.jobs import run_sweep

    run_id = new_run_id()
    RunStore(tmp_path, run_id).write_run({"run_id": run_id, "spec": parse_sweep(BASE).to_json(),
                                          "status": "interrupted"})
    changed = parse_sweep({**BASE, "repetitions": 4})
    with pytest.raises(UserError, match=f"--resume {run_id}: this sweep file differs"):
        run_sweep(changed, None, tmp_path, resume=run_id)


def test_points_of_a_large_matrix_come_in_linear_time():
    """40,000 points (1.0 s at 10,000 and 14 s at 40,000 with the old sort) list in well under a second."""
    import time

    s = parse_sweep({**BASE, "nodes": list(range(1, 201)), "workers_per_node": list(range(1, 201))},
                    max_trials=50_000)
    t0 = time.perf_counter()
    got = s.points()
    assert len(got) == 40_000 and got[-1].shape.nodes == 200 and got[-1].shape.workers == 200
    assert time.perf_counter() - t0 < 5  # generous: quadratic would take minutes here


def test_cli_max_trials_and_a_non_utf8_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('nodes = [1, 2, 3]\n[workloads."cpu.sqrt_mod"]\nelements = [1, 2, 3, 4]\n')
    result = CliRunner().invoke(app, ["sweep", str(path), "--max-trials", "5", "--dry-run"])
    assert result.exit_code == 2
    assert "The sweep matrix has 12 trials, more than --max-trials 5" in result.output
    path.write_bytes(b'nodes = [1]\n# \xff\xfe caf\xe9\n[workloads."cpu.sqrt_mod"]\n')
    result = CliRunner().invoke(app, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 2 and "is not UTF-8 text (byte 14); save it as UTF-8 TOML." in result.output


def host_nodes(tmp_path, count: int, cpus: int = 2, boot_id: str = "boot-a"):
    topo = read_topology(vm_no_smt(tmp_path / boot_id, cpus))
    return [NodeInfo(f"{boot_id}-node{i}", "vm", f"10.0.0.{i}", i == count - 1, cpus, topo, {"boot_id": boot_id})
            for i in range(count)]


def test_nodes_of_one_host_get_disjoint_cpus(tmp_path):
    """Three Ray nodes on one 2-CPU host (cluster local --nodes 3): 2 workers fit, 3 do not."""
    nodes = host_nodes(tmp_path, 3)
    two = plan_trials(parse_sweep({**BASE, "nodes": 2}).points(), nodes)[0]
    assert [s.cpus for s in two.slots] == [(0,), (1,)] and len(two.node_ids) == 2
    with pytest.raises(UserError, match=r"run on host vm and share CPUs 0-1; 3 workers x 1 CPU do not, 2 would"):
        plan_trials(parse_sweep({**BASE, "nodes": 3}).points(), nodes)


def test_nodes_of_other_hosts_or_disjoint_cpus_are_planned_alone(tmp_path):
    other_host = host_nodes(tmp_path, 1, boot_id="boot-b")
    nodes = host_nodes(tmp_path, 1) + other_host
    trial = plan_trials(parse_sweep({**BASE, "nodes": 2}).points(), nodes)[0]
    assert [s.cpus for s in trial.slots] == [(0,), (0,)]  # two machines: each its own CPU 0
    four = read_topology(vm_no_smt(tmp_path / "four", 4))
    pinned = [NodeInfo(f"boot-c-{i}", "vm", f"10.0.1.{i}", i == 1, 2, replace_usable(four, cpus), {"boot_id": "boot-c"})
              for i, cpus in enumerate(((0, 1), (2, 3)))]
    trial = plan_trials(parse_sweep({**BASE, "nodes": 2}).points(), pinned)[0]
    assert [s.cpus for s in trial.slots] == [(0,), (2,)]  # one host, disjoint CPU sets (taskset): no pool


def replace_usable(topology, usable):
    from dataclasses import replace

    return replace(topology, usable_cpus=tuple(usable))


def test_dry_run_estimate_counts_every_round():
    from orchestrator.render.run_tables import duration_text
    from orchestrator.settings import Sampling

    # 10 trials x 5 invocations x (1 s + 3 x 0.1 s of calibration + (1 + 3) rounds x (1.25 x 0.1 s + 5 ms)) = 91 s
    assert duration_text(10, Sampling()) == "at least 1 min 31 s"
    # 100 x 5 x (1 + 3 + 4 x 1.255) s = 4,510 s
    assert duration_text(100, Sampling(min_time_s=1.0)) == "at least 1 h 15 min"
    assert duration_text(2, Sampling(invocations=1, repetitions=10, until_stable=True, max_time_s=30)).endswith(
        "at most about 1 min 05 s (--until-stable)")
