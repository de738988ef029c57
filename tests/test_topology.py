"""Tests for cluster.topology: hwloc's own output for real dumps, and synthetic sysfs trees."""

from __future__ import annotations

import json
import os
import re
import tarfile
from pathlib import Path

import pytest
from sysfs_builder import (
    Machine,
    build_sysfs,
    epyc_2s,
    ryzen_7800x3d,
    ryzen_7950x3d,
    vm_no_smt,
)

from cluster.cpulist import parse_cpumask
from cluster.topology import Topology, read_topology

MiB = 1024 * 1024


# --- real dumps vs hwloc ------------------------------------------------------------------


def _fixture_dir() -> Path:
    """Return the folder of hwloc dumps (TOPOBENCH_FIXTURES overrides ../shared/...)."""
    env = os.environ.get("TOPOBENCH_FIXTURES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "topology"


ARCHIVES = sorted(_fixture_dir().glob("*.tar.bz2")) if _fixture_dir().is_dir() else []


_WANTED = re.compile(
    r"(^|/)(proc|sys/devices/(system|cpu_core|cpu_atom|platform)|sys/bus|sys/fs)(/|$)"
)


def _extract(archive: Path, dest: Path) -> Path:
    """Extract `archive` into `dest` safely (skip devices and links leaving it); return its root."""
    with tarfile.open(archive) as tar:
        safe = []
        for member in tar.getmembers():
            if not _WANTED.search(member.name):
                continue  # PCI, DMI and other trees the reader never looks at
            try:
                tarfile.data_filter(member, str(dest))
            except tarfile.FilterError:
                continue
            safe.append(member)
        tar.extractall(dest, members=safe, filter="data")
    tops = [p for p in dest.iterdir() if p.is_dir()]
    return tops[0] if len(tops) == 1 and (tops[0] / "sys").exists() else dest


def _size_bytes(text: str) -> int:
    """Parse hwloc's "6144KiB"/"24MiB"/"8192KB" into bytes."""
    m = re.fullmatch(r"(\d+)([KMG])i?B", text)
    assert m, text
    return int(m.group(1)) * {"K": 1024, "M": MiB, "G": 1024 * MiB}[m.group(2)]


def parse_console(text: str) -> dict:
    """Parse hwloc's verbose lstopo console output into counts, L3 CPU sets and CPU kinds."""
    out = {"packages": [], "numa": 0, "l3": [], "cores": 0, "pus": [], "kinds": []}
    open_l3: list[tuple[int, dict]] = []  # (indent, l3 record) of the L3 being filled
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        body = line.strip()
        while open_l3 and indent <= open_l3[-1][0]:
            open_l3.pop()
        if m := re.match(r"Package L#\d+ \(P#(\d+)", body):
            out["packages"].append(int(m.group(1)))
        elif body.startswith("NUMANode L#"):
            out["numa"] += 1
        elif m := re.match(r"L3(?:Cache)? L#\d+ \((.*)\)", body):
            size = re.search(r"size=(\w+)", m.group(1)) or re.match(r"(\w+)", m.group(1))
            rec = {"size_bytes": _size_bytes(size.group(1)), "cpus": []}
            out["l3"].append(rec)
            open_l3.append((indent, rec))
        elif body.startswith("Core L#"):
            out["cores"] += 1
        elif m := re.match(r"PU L#\d+ \(P#(\d+)\)", body):
            out["pus"].append(int(m.group(1)))
            if open_l3:
                open_l3[-1][1]["cpus"].append(int(m.group(1)))
        elif m := re.match(r"CPU kind #(\d+) efficiency (\d+) cpuset (\S+)", body):
            words = ",".join(w.removeprefix("0x") for w in m.group(3).split(","))
            out["kinds"].append((int(m.group(2)), parse_cpumask(words)))
    return out


@pytest.fixture(scope="module", params=ARCHIVES, ids=[a.name.split(".")[0] for a in ARCHIVES])
def dump(request, tmp_path_factory):
    """Yield (topology, hwloc's parsed console) for one real dump."""
    archive: Path = request.param
    console = archive.with_name(archive.name.removesuffix(".tar.bz2") + ".console")
    root = _extract(archive, tmp_path_factory.mktemp("dump"))
    return read_topology(root), parse_console(console.read_text())


@pytest.mark.skipif(not ARCHIVES, reason="no hwloc topology fixtures")
class TestRealDumps:
    def test_counts_match_hwloc(self, dump):
        topo, hw = dump
        assert len(topo.packages) == len(hw["packages"])
        assert sorted(topo.packages) == sorted(hw["packages"])
        assert len(topo.numa_nodes) == hw["numa"]
        assert len(topo.l3_domains) == len(hw["l3"])
        assert len(topo.cores) == hw["cores"]
        assert topo.pus == tuple(sorted(hw["pus"]))
        assert topo.usable_cpus == topo.pus  # no dump restricts its cpuset

    def test_l3_domains_match_hwloc(self, dump):
        topo, hw = dump
        expected = sorted((tuple(sorted(r["cpus"])), r["size_bytes"]) for r in hw["l3"])
        got = sorted((d.cpus, d.size_bytes) for d in topo.l3_domains)
        assert got == expected

    def test_cpu_kinds_match_hwloc(self, dump):
        topo, hw = dump
        if len(hw["kinds"]) < 2:
            assert topo.hybrid_kinds == {}
            return
        kinds = dict(hw["kinds"])  # hwloc: efficiency 0 is the least powerful kind
        assert topo.hybrid_kinds["efficiency"] == kinds[min(kinds)]
        assert topo.hybrid_kinds["performance"] == kinds[max(kinds)]

    def test_round_trip(self, dump):
        topo, _ = dump
        assert Topology.from_dict(json.loads(json.dumps(topo.to_dict()))) == topo


# --- synthetic trees -----------------------------------------------------------------------


def test_7800x3d(tmp_path):
    topo = read_topology(ryzen_7800x3d(tmp_path))
    assert topo.pus == tuple(range(16))
    assert len(topo.cores) == 8 and topo.packages == (0,)
    assert topo.siblings(3) == (3, 11)
    assert [(d.index, d.size_bytes, d.cpus, d.numa_node) for d in topo.l3_domains] == [
        (0, 96 * MiB, tuple(range(16)), 0)
    ]
    assert topo.cache_sizes_bytes([5]) == {"L1d": 32 * 1024, "L2": MiB, "L3": 96 * MiB}
    assert topo.summary() == (
        "1 package, 1 NUMA node, 1 L3 domain (96 MiB), 8 cores, 16 PUs (SMT 2), usable 0-15"
    )
    assert topo.hybrid_kinds == {} and topo.offline_cpus == ()


def test_7950x3d(tmp_path):
    topo = read_topology(ryzen_7950x3d(tmp_path))
    assert [(d.size_bytes, d.cpus) for d in topo.l3_domains] == [
        (96 * MiB, tuple(range(8)) + tuple(range(16, 24))),
        (32 * MiB, tuple(range(8, 16)) + tuple(range(24, 32))),
    ]
    assert topo.l3_domain_of(20) == 0 and topo.l3_domain_of(9) == 1
    assert topo.l3_domain_of(99) is None
    assert topo.numa_node_of(31) == 0
    assert topo.siblings(8) == (8, 24)
    assert topo.summary() == (
        "1 package, 1 NUMA node, 2 L3 domains (96 MiB + 32 MiB), 16 cores, 32 PUs (SMT 2), "
        "usable 0-31"
    )


def test_epyc_two_sockets(tmp_path):
    topo = read_topology(epyc_2s(tmp_path))
    assert topo.packages == (0, 1)
    assert [n.cpus for n in topo.numa_nodes] == [
        tuple(range(16)) + tuple(range(32, 48)),
        tuple(range(16, 32)) + tuple(range(48, 64)),
    ]
    assert len(topo.l3_domains) == 8
    assert [d.numa_node for d in topo.l3_domains] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert topo.l3_domains[5].cpus == (20, 21, 22, 23, 52, 53, 54, 55)
    assert {c.package for c in topo.cores if 17 in c.cpus} == {1}
    assert len(topo.cores) == 32 and len(topo.pus) == 64


def test_offline_cpus_including_cpu0(tmp_path):
    topo = read_topology(ryzen_7800x3d(tmp_path, offline=(0, 5)))
    assert topo.offline_cpus == (0, 5)
    assert 0 not in topo.pus and 5 not in topo.pus and len(topo.pus) == 14
    assert topo.siblings(8) == (8,)  # its sibling 0 is offline
    assert len(topo.cores) == 8
    assert topo.l3_domains[0].cpus == tuple(c for c in range(16) if c not in (0, 5))
    assert topo.usable_cpus == topo.pus


def test_cgroup_v2_at_nonstandard_mount(tmp_path):
    root = ryzen_7950x3d(tmp_path, cgroup_v2=("/mnt/cg2", "/bench.slice/run.scope", "2-5,18"))
    topo = read_topology(root)
    assert topo.usable_cpus == (2, 3, 4, 5, 18)
    assert topo.pus == tuple(range(32))
    assert "cpuset.cpus.effective" in topo.usable_source
    assert "bench.slice/run.scope" in topo.usable_source
    assert topo.summary().endswith("usable 2-5,18")


def test_cgroup_v2_found_through_proc_self_cpuset(tmp_path):
    root = ryzen_7800x3d(tmp_path, cgroup_v2=("/mnt/cg2", "/job", "4-7"))
    (root / "proc/self/cgroup").unlink()
    (root / "proc/self/cpuset").write_text("/job\n")
    assert read_topology(root).usable_cpus == (4, 5, 6, 7)


def test_cgroup_v2_empty_cpuset_is_ignored(tmp_path):
    root = ryzen_7800x3d(tmp_path, cgroup_v2=("/sys/fs/cgroup", "/job", ""))
    topo = read_topology(root)
    assert topo.usable_cpus == tuple(range(16))
    assert topo.usable_source == "online CPUs"


def test_cgroup_v2_without_cpuset_in_leaf_uses_parent(tmp_path):
    root = ryzen_7800x3d(tmp_path, cgroup_v2=("/cg", "/a", "0-3"))
    (root / "proc/self/cgroup").write_text("0::/a/b/c\n")
    assert read_topology(root).usable_cpus == (0, 1, 2, 3)


def test_cgroup_v1(tmp_path):
    root = ryzen_7800x3d(tmp_path, cgroup_v1=("/cgroup/cpuset", "/docker/abc", "8-11"))
    topo = read_topology(root)
    assert topo.usable_cpus == (8, 9, 10, 11)
    assert "cgroup v1" in topo.usable_source


def test_hex_mask_only_tree_reads_like_lists(tmp_path):
    with_lists = read_topology(ryzen_7950x3d(tmp_path / "a"))
    hex_only = read_topology(ryzen_7950x3d(tmp_path / "b", hex_only=True))
    assert not list((tmp_path / "b").rglob("*_list"))
    assert hex_only == with_lists


def test_vm_without_smt_cache_or_nodes(tmp_path):
    topo = read_topology(vm_no_smt(tmp_path, 4))
    assert topo.l3_domains == () and topo.caches == ()
    assert [(n.id, n.cpus) for n in topo.numa_nodes] == [(0, (0, 1, 2, 3))]
    assert [c.cpus for c in topo.cores] == [(0,), (1,), (2,), (3,)]
    assert topo.cache_sizes_bytes([0]) == {}
    assert topo.l3_domain_of(0) is None
    assert topo.summary() == (
        "1 package, 1 NUMA node, no L3 domains, 4 cores, 4 PUs (SMT 1), usable 0-3"
    )


def test_hybrid_from_cpu_core_and_cpu_atom(tmp_path):
    topo = read_topology(vm_no_smt(tmp_path, 8, hybrid=("0-3", "4-7")))
    assert topo.hybrid_kinds == {"performance": (0, 1, 2, 3), "efficiency": (4, 5, 6, 7)}


def test_hybrid_from_max_frequency(tmp_path):
    freqs = {0: 5_200_000, 1: 5_000_000, 2: 3_900_000, 3: 3_900_000}
    topo = read_topology(vm_no_smt(tmp_path, 4, max_freq_khz=freqs))
    assert topo.hybrid_kinds == {"performance": (0, 1), "efficiency": (2, 3)}


def test_close_max_frequencies_are_not_hybrid(tmp_path):
    # The 7950X3D's V-cache CCD boosts lower (5.25 vs 5.7 GHz): one kind of core.
    freqs = {c: (5_250_000 if c % 16 < 8 else 5_700_000) for c in range(32)}
    topo = read_topology(ryzen_7950x3d(tmp_path, max_freq_khz=freqs))
    assert topo.hybrid_kinds == {}


def test_x3d_mode_ranks_and_governors(tmp_path):
    ranks = {c: 200 + (c % 16) for c in range(32)}
    root = ryzen_7950x3d(tmp_path, x3d_mode="cache", highest_perf=ranks, governor="performance")
    topo = read_topology(root)
    assert topo.amd_x3d_mode == "cache"
    assert topo.preferred_core_rank == ranks
    assert topo.governors == dict.fromkeys(range(32), "performance")
    assert Topology.from_dict(json.loads(json.dumps(topo.to_dict()))) == topo


def test_x3d_mode_from_platform_bus(tmp_path):
    root = vm_no_smt(tmp_path, 2)
    mode = root / "sys/bus/platform/devices/AMDI0101:00/amd_x3d_mode"
    mode.parent.mkdir(parents=True)
    mode.write_text("frequency\n")
    assert read_topology(root).amd_x3d_mode == "frequency"


@pytest.mark.parametrize("builder", [ryzen_7800x3d, ryzen_7950x3d, epyc_2s, vm_no_smt])
def test_round_trip_json(tmp_path, builder):
    topo = read_topology(builder(tmp_path, offline=(1,)))
    assert Topology.from_dict(json.loads(json.dumps(topo.to_dict()))) == topo


def test_empty_root_does_not_crash(tmp_path):
    topo = read_topology(tmp_path)
    assert topo.pus == () and topo.l3_domains == ()
    assert "0 PUs" in topo.summary()


def test_garbage_files_degrade(tmp_path):
    root = ryzen_7800x3d(tmp_path)
    cpu0 = root / "sys/devices/system/cpu/cpu0"
    (cpu0 / "cache/index3/size").write_text("lots\n")
    (cpu0 / "topology/core_id").write_text("x\n")
    (root / "sys/devices/system/node/node0/cpulist").write_text("zz\n")
    (root / "proc/mounts").write_text("garbage\n")
    topo = read_topology(root)
    assert topo.pus == tuple(range(16))
    assert len(topo.l3_domains) == 1  # other CPUs still report the L3


def test_build_sysfs_custom_machine(tmp_path):
    root = build_sysfs(tmp_path, Machine(cores=[(0, 1), (2, 3)], package_of={2: 1, 3: 1}))
    topo = read_topology(root)
    assert topo.packages == (0, 1)
    assert [c.cpus for c in topo.cores] == [(0, 1), (2, 3)]


def test_live_machine():
    topo = read_topology()
    assert topo.pus and set(topo.usable_cpus) <= set(topo.pus)
    assert set(topo.usable_cpus) <= os.sched_getaffinity(0)
    assert "sched_getaffinity" in topo.usable_source
    assert Topology.from_dict(json.loads(json.dumps(topo.to_dict()))) == topo


def test_render_topology_and_plan(tmp_path):
    from rich.console import Console

    from cluster.placement import plan_workers
    from cluster.placement_policy import parse_placement
    from orchestrator.render.topology_view import render_plan, render_topology

    topo = read_topology(ryzen_7950x3d(tmp_path, x3d_mode="cache"))
    console = Console(record=True, width=200)
    console.print(render_topology(topo))
    console.print(render_plan(topo, plan_workers(topo, parse_placement("spread"), 2, threads_per_worker=2)))
    text = console.export_text()
    assert "L3 #0 96 MiB, CPUs 0-7,16-23" in text
    assert "L3 #1 32 MiB, CPUs 8-15,24-31" in text
    assert "Core 0: PU 0, PU 16" in text
    assert "amd_x3d_mode: cache" in text
    assert "usable CPUs: 0-31" in text
    assert "8-9" in text
