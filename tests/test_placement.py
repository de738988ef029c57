"""Tests for cluster.placement: policies and likwid-style expressions on synthetic machines."""

from __future__ import annotations

import pytest
from sysfs_builder import adjacent_smt, epyc_2s, ryzen_7800x3d, ryzen_7950x3d, vm_no_smt

from cluster.placement import WorkerPlacement, domain_order
from cluster.placement import plan_workers as plan_parsed
from cluster.placement_policy import PlacementError, parse_placement
from cluster.topology import read_topology
from workloads.errors import UserError


def plan_workers(topology, text, *args, **kwargs):
    """Parse the placement text, then plan it (what run and sweep do)."""
    return plan_parsed(topology, parse_placement(text), *args, **kwargs)

CCD0_7950 = set(range(8)) | set(range(16, 24))  # 96 MiB V-cache CCD
CCD1_7950 = set(range(8, 16)) | set(range(24, 32))


@pytest.fixture
def x7800(tmp_path):
    return read_topology(ryzen_7800x3d(tmp_path))


@pytest.fixture
def x7950(tmp_path):
    return read_topology(ryzen_7950x3d(tmp_path))


@pytest.fixture
def epyc(tmp_path):
    return read_topology(epyc_2s(tmp_path))


def cpus_of(plan):
    return [p.cpus for p in plan]


def assert_no_two_siblings(topo, plan):
    used = [c for p in plan for c in p.cpus]
    assert len(used) == len(set(used))
    cores = [topo.siblings(c) for c in used]
    assert len(cores) == len(set(cores)), "two worker threads share a physical core"


# --- spread ---------------------------------------------------------------------------------


def test_spread_puts_first_two_workers_on_different_ccds(x7950):
    plan = plan_workers(x7950, "spread", 2)
    assert cpus_of(plan) == [(0,), (8,)]
    assert [p.l3_domain for p in plan] == [0, 1]
    assert all(p.pinned for p in plan)


def test_spread_with_threads_keeps_each_worker_in_one_domain(x7950):
    plan = plan_workers(x7950, "spread", 4, threads_per_worker=2)
    assert cpus_of(plan) == [(0, 1), (8, 9), (2, 3), (10, 11)]
    assert [p.l3_domain for p in plan] == [0, 1, 0, 1]


def test_spread_alternates_sockets_on_epyc(epyc):
    plan = plan_workers(epyc, "spread", 4)
    assert [p.numa_node for p in plan] == [0, 1, 0, 1]
    assert [p.l3_domain for p in plan] == [0, 4, 1, 5]
    assert cpus_of(plan) == [(0,), (16,), (4,), (20,)]


def test_spread_uses_physical_cores_before_siblings(x7950):
    plan = plan_workers(x7950, "spread", 16)
    assert sorted(c for p in plan for c in p.cpus) == list(range(16))


# --- compact ----------------------------------------------------------------------------------


def test_compact_fills_one_domain_physical_cores_first(x7950):
    plan = plan_workers(x7950, "compact", 18)
    flat = [c for p in plan for c in p.cpus]
    assert flat[:8] == list(range(8))  # physical cores of CCD0
    assert flat[8:16] == list(range(16, 24))  # then their siblings
    assert flat[16:] == [8, 9]  # then the next domain
    assert {p.l3_domain for p in plan[:16]} == {0}


def test_compact_threads_per_worker(x7800):
    plan = plan_workers(x7800, "compact", 2, threads_per_worker=3)
    assert cpus_of(plan) == [(0, 1, 2), (3, 4, 5)]


# --- cores ------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers,threads", [(16, 1), (8, 2), (3, 1)])
def test_cores_never_uses_two_siblings(x7950, workers, threads):
    plan = plan_workers(x7950, "cores", workers, threads_per_worker=threads)
    assert_no_two_siblings(x7950, plan)
    assert all(len(p.cpus) == threads for p in plan)


def test_cores_on_adjacent_siblings(tmp_path):
    topo = read_topology(adjacent_smt(tmp_path, 4))
    plan = plan_workers(topo, "cores", 4)
    assert cpus_of(plan) == [(0,), (2,), (4,), (6,)]


def test_cores_refuses_too_many(tmp_path):
    topo = read_topology(ryzen_7800x3d(tmp_path, cgroup_v2=("/mnt/cg2", "/j", "0-1,8-9")))
    with pytest.raises(PlacementError) as err:
        plan_workers(topo, "cores", 4)
    assert str(err.value) == (
        "Placement 'cores' needs 4 physical cores for 4 workers x 1 thread, but this node has "
        "2 usable cores (CPUs 0-1,8-9); use fewer --workers or --placement compact."
    )
    assert isinstance(err.value, UserError)


# --- largest-l3 ---------------------------------------------------------------------------------


def test_largest_l3_stays_on_vcache_ccd(x7950):
    plan = plan_workers(x7950, "largest-l3", 16)
    assert {c for p in plan for c in p.cpus} == CCD0_7950
    assert {p.l3_domain for p in plan} == {0}


def test_largest_l3_found_by_size_when_big_ccd_is_high(tmp_path):
    topo = read_topology(ryzen_7950x3d(tmp_path, big_on_high=True))
    plan = plan_workers(topo, "largest-l3", 4, threads_per_worker=2)
    used = {c for p in plan for c in p.cpus}
    assert used <= CCD1_7950
    assert cpus_of(plan)[0] == (8, 9)


def test_largest_l3_refuses_more_than_the_domain(x7950):
    with pytest.raises(PlacementError, match=r"largest L3 domains \(96 MiB\) have 16 usable CPUs"):
        plan_workers(x7950, "largest-l3", 17)


def test_largest_l3_without_cache_info(tmp_path):
    with pytest.raises(PlacementError, match="no last-level caches"):
        plan_workers(read_topology(vm_no_smt(tmp_path)), "largest-l3", 1)


# --- none ----------------------------------------------------------------------------------------


def test_none_gives_every_worker_all_usable_cpus(x7800):
    plan = plan_workers(x7800, "none", 3)
    assert plan == tuple(WorkerPlacement(tuple(range(16)), 0, 0, False) for _ in range(3))


# --- expressions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr,cpus",
    [
        ("N:0-3", [0, 1, 2, 3]),
        ("N:8-9", [8, 9]),  # logical 8.. are the second hyperthreads: siblings of 0 and 1
        ("0,2-5", [0, 2, 3, 4, 5]),
        ("S0:0-1", [0, 1]),
        ("M0:6-9", [6, 7, 8, 9]),
        ("C0:0-1@C0:8", [0, 1, 8]),
    ],
)
def test_expressions_on_7800x3d(x7800, expr, cpus):
    plan = plan_workers(x7800, expr, len(cpus))
    assert [c for p in plan for c in p.cpus] == cpus


def test_node_numbering_with_adjacent_siblings(tmp_path):
    topo = read_topology(adjacent_smt(tmp_path, 4))
    assert [p.cpus[0] for p in plan_workers(topo, "N:0-3", 4)] == [0, 2, 4, 6]
    assert [p.cpus[0] for p in plan_workers(topo, "N:4-5", 2)] == [1, 3]
    assert domain_order(topo, topo.pus) == (0, 2, 4, 6, 1, 3, 5, 7)


def test_domain_expressions_on_7950x3d(x7950):
    plan = plan_workers(x7950, "C1:0-1@C0:0-1", 2, threads_per_worker=2)
    assert cpus_of(plan) == [(8, 9), (0, 1)]
    assert [p.l3_domain for p in plan] == [1, 0]
    assert cpus_of(plan_workers(x7950, "C1:8", 1)) == [(24,)]


def test_socket_and_memory_domains_on_epyc(epyc):
    assert cpus_of(plan_workers(epyc, "S1:0-1", 2)) == [(16,), (17,)]
    assert cpus_of(plan_workers(epyc, "M1:16", 1)) == [(48,)]
    plan = plan_workers(epyc, "S0:0@S1:0", 2)
    assert [p.numa_node for p in plan] == [0, 1]


def test_expression_dealt_in_chunks(x7800):
    plan = plan_workers(x7800, "0-5", 3, threads_per_worker=2)
    assert cpus_of(plan) == [(0, 1), (2, 3), (4, 5)]
    assert plan[0].l3_domain == 0 and plan[0].numa_node == 0


@pytest.mark.parametrize(
    "expr,message",
    [
        ("C2:0", r"last-level-cache domain C2, but this node has 2 \(C0-C1\)"),
        ("S1:0", r"socket S1, but this node has 1 \(S0-S0\)"),
        ("C0:16", r"thread 16 of last-level-cache domain C0, which has 16 usable CPUs"),
        ("0,x", r"malformed CPU list item 'x'"),
        ("C:0", r"needs a domain number after C"),
        ("0,0", r"lists CPU 0 twice"),
        ("40", r"CPU 40, which is outside the usable set 0-31"),
        ("0-1", r"yields 2 CPUs \(0-1\), but 4 workers x 1 thread need 4"),
    ],
)
def test_bad_expressions_are_refused(x7950, expr, message):
    with pytest.raises(PlacementError, match=message):
        plan_workers(x7950, expr, 4)


def test_cpu_outside_cgroup_names_the_cgroup(tmp_path):
    topo = read_topology(ryzen_7800x3d(tmp_path, cgroup_v2=("/mnt/cg2", "/bench", "0-3")))
    with pytest.raises(PlacementError) as err:
        plan_workers(topo, "0,4", 2)
    message = str(err.value)
    assert "CPU 4" in message and "usable set 0-3" in message and "cpuset.cpus.effective" in message


def test_domain_relative_numbering_counts_usable_cpus(tmp_path):
    topo = read_topology(ryzen_7800x3d(tmp_path, cgroup_v2=("/mnt/cg2", "/bench", "4-7,12-15")))
    assert cpus_of(plan_workers(topo, "N:0-1", 2)) == [(4,), (5,)]
    assert cpus_of(plan_workers(topo, "N:4", 1)) == [(12,)]


# --- reserve, errors, usable set ----------------------------------------------------------------


def test_reserve_takes_last_siblings_of_compact_order(x7950):
    plan = plan_workers(x7950, "none", 1, reserve_cpus=2)
    assert set(range(32)) - set(plan[0].cpus) == {30, 31}
    compact = plan_workers(x7950, "compact", 30, reserve_cpus=2)
    assert 30 not in {c for p in compact for c in p.cpus}
    with pytest.raises(PlacementError, match="needs 31 CPUs"):
        plan_workers(x7950, "compact", 31, reserve_cpus=2)


def test_reserve_on_vm_removes_last_cpus(tmp_path):
    topo = read_topology(vm_no_smt(tmp_path, 4))
    assert plan_workers(topo, "none", 1, reserve_cpus=1)[0].cpus == (0, 1, 2)
    with pytest.raises(PlacementError, match=r"--reserve-cpus 4 must be between 0 and 3"):
        plan_workers(topo, "compact", 1, reserve_cpus=4)
    with pytest.raises(PlacementError, match="outside the usable set 0-2 after --reserve-cpus"):
        plan_workers(topo, "3", 1, reserve_cpus=1)


def test_only_usable_cpus_are_used(tmp_path):
    topo = read_topology(ryzen_7950x3d(tmp_path, cgroup_v2=("/cg", "/x", "8-15,24-31")))
    for policy in ("compact", "spread", "cores", "none"):
        plan = plan_workers(topo, policy, 2)
        assert {c for p in plan for c in p.cpus} <= CCD1_7950, policy
    with pytest.raises(PlacementError, match=r"have 0 usable CPUs \(none\)"):
        plan_workers(topo, "largest-l3", 1)


def test_too_many_workers_for_compact(tmp_path):
    topo = read_topology(vm_no_smt(tmp_path, 2))
    with pytest.raises(PlacementError) as err:
        plan_workers(topo, "compact", 2, threads_per_worker=2)
    assert str(err.value) == (
        "Placement 'compact' needs 4 CPUs for 2 workers x 2 threads, but this node has 2 usable "
        "CPUs (0-1); use fewer --workers or --threads-per-worker."
    )


@pytest.mark.parametrize("policy", ["fastest", "", "X0:1"])
def test_unknown_policy(x7800, policy):
    with pytest.raises(PlacementError, match="Unknown placement"):
        plan_workers(x7800, policy, 1)


def test_bad_counts(x7800):
    with pytest.raises(PlacementError, match="at least 1 worker"):
        plan_workers(x7800, "compact", 0)
    with pytest.raises(PlacementError, match="at least 1 worker"):
        plan_workers(x7800, "compact", 1, threads_per_worker=0)


def test_vm_policies(tmp_path):
    topo = read_topology(vm_no_smt(tmp_path, 4))
    assert cpus_of(plan_workers(topo, "spread", 2)) == [(0,), (1,)]
    assert cpus_of(plan_workers(topo, "cores", 4)) == [(0,), (1,), (2,), (3,)]
    assert plan_workers(topo, "compact", 1)[0] == WorkerPlacement((0,), None, 0, True)


@pytest.mark.parametrize("text,message", [
    ("compactt", r"Unknown placement 'compactt'; use one of compact, spread"),
    ("0,x", r"malformed CPU list item 'x'"),
    ("C:0", r"needs a domain number after C"),
    ("N1:0", r"names node domain N1, but only N exists"),
    ("0-99999999999", r"names CPU 99999999999, above the largest CPU number Linux supports \(8191\)"),
    ("S0:0-1000000000", r"above the largest CPU number"),
])
def test_malformed_placements_are_refused_when_parsed(text, message):
    """Every malformed placement is refused by the parser alone, before any topology is known."""
    with pytest.raises(PlacementError, match=message):
        parse_placement(text)


def test_parsed_placement_keeps_its_text_and_parts():
    p = parse_placement(" C1:0-1@3 ")
    assert (str(p), p.policy, p.pinned) == ("C1:0-1@3", None, True)
    assert [(x.domain, x.index, x.positions) for x in p.parts] == [("C", 1, (0, 1)), (None, 0, (3,))]
    assert parse_placement("none").pinned is False and parse_placement("spread").policy == "spread"
