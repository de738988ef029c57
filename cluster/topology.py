"""Read a machine's CPU topology (cores, SMT, caches, L3 domains, NUMA, usable CPUs) from sysfs.

`read_topology(root)` is pure over a sysfs root: `/` for the live machine, or an extracted
snapshot in tests. Every file is optional; a missing or unreadable one degrades the result
(no cache dir gives no L3 domains, no node dir gives one NUMA node) and never raises.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from cluster import sysfs
from cluster.cpulist import format_cpulist
from cluster.sysfs import read_cpulist, read_cpumask, read_int, read_text
from workloads.units import format_bytes, parse_size, plural

_CPU_DIR = re.compile(r"cpu(\d+)$")
_NODE_DIR = re.compile(r"node(\d+)$")
_INDEX_DIR = re.compile(r"index(\d+)$")
# Two max-frequency classes are CPU kinds when the slower one reaches at most this fraction
# of the faster one (the 7950X3D's V-cache CCD at 5.25 vs 5.7 GHz is 0.92: not hybrid).
_HYBRID_FREQ_RATIO = 0.85


@dataclass(frozen=True, slots=True)
class Core:
    """A physical core: its package, die, kernel core_id and SMT sibling CPUs (sorted)."""

    package: int
    die: int
    core_id: int
    cpus: tuple[int, ...]
    cluster: int | None = None


@dataclass(frozen=True, slots=True)
class NumaNode:
    """A NUMA node and its online CPUs (sorted)."""

    id: int
    cpus: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Cache:
    """One cache instance: level, kind ("Data"|"Instruction"|"Unified"), size in bytes, CPUs."""

    level: int
    kind: str
    size_bytes: int
    cpus: tuple[int, ...]
    id: int | None = None


@dataclass(frozen=True, slots=True)
class L3Domain:
    """CPUs sharing one last-level cache; index 0.. ordered by lowest CPU."""

    index: int
    size_bytes: int
    cpus: tuple[int, ...]
    numa_node: int | None


@dataclass(frozen=True, slots=True)
class Topology:
    """A machine's CPU topology; every CPU set is a sorted tuple of OS CPU ids."""

    pus: tuple[int, ...]
    usable_cpus: tuple[int, ...]
    offline_cpus: tuple[int, ...]
    cores: tuple[Core, ...]
    packages: tuple[int, ...]
    numa_nodes: tuple[NumaNode, ...]
    caches: tuple[Cache, ...]
    l3_domains: tuple[L3Domain, ...]
    hybrid_kinds: dict[str, tuple[int, ...]] = field(default_factory=dict)
    amd_x3d_mode: str | None = None
    preferred_core_rank: dict[int, int] = field(default_factory=dict)
    governors: dict[int, str] = field(default_factory=dict)
    usable_source: str = "online CPUs"

    def l3_domain_of(self, cpu: int) -> int | None:
        """Return the index of the L3 domain holding `cpu`, or None when unknown."""
        for domain in self.l3_domains:
            if cpu in domain.cpus:
                return domain.index
        return None

    def numa_node_of(self, cpu: int) -> int | None:
        """Return the id of the NUMA node holding `cpu`, or None when unknown."""
        for node in self.numa_nodes:
            if cpu in node.cpus:
                return node.id
        return None

    def siblings(self, cpu: int) -> tuple[int, ...]:
        """Return the SMT siblings of `cpu` including itself; () for an unknown CPU."""
        for core in self.cores:
            if cpu in core.cpus:
                return core.cpus
        return ()

    def cache_sizes_bytes(self, cpus: tuple[int, ...] | list[int]) -> dict[str, int]:
        """Return {"L1d","L2","L3": bytes} of the caches covering the first CPU; unknown keys left out."""
        if not cpus:
            return {}
        first = cpus[0]
        sizes: dict[str, int] = {}
        for cache in self.caches:
            if first not in cache.cpus or cache.kind == "Instruction":
                continue
            key = {1: "L1d", 2: "L2", 3: "L3"}.get(cache.level)
            if key and key not in sizes:
                sizes[key] = cache.size_bytes
        return sizes

    def l3_total_bytes(self, cpus: tuple[int, ...] | list[int]) -> int:
        """Return the size of all L3 domains that hold any of ``cpus`` (bytes); 0 when unknown."""
        wanted = set(cpus)
        return sum(d.size_bytes for d in self.l3_domains if wanted & set(d.cpus))

    def summary(self) -> str:
        """Return a one-line description, e.g. "1 package, 1 NUMA node, 2 L3 domains (...), ..."."""
        smt = max((len(core.cpus) for core in self.cores), default=1)
        sizes = [format_bytes(d.size_bytes) for d in self.l3_domains]
        if not sizes:
            l3 = "no L3 domains"
        elif len(set(sizes)) == 1 and len(sizes) > 2:
            l3 = f"{len(sizes)} L3 domains ({len(sizes)} x {sizes[0]})"
        else:
            l3 = f"{plural(len(sizes), 'L3 domain')} ({' + '.join(sizes)})"
        parts = [
            plural(len(self.packages), "package"),
            plural(len(self.numa_nodes), "NUMA node"),
            l3,
            plural(len(self.cores), "core"),
            f"{plural(len(self.pus), 'PU')} (SMT {smt})",
        ]
        if self.hybrid_kinds:
            kinds = ", ".join(f"{k} {format_cpulist(v)}" for k, v in self.hybrid_kinds.items())
            parts.append(f"kinds: {kinds}")
        parts.append(f"usable {format_cpulist(self.usable_cpus) or 'none'}")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        """Return a JSON-serializable dict (integer map keys become strings)."""
        return {
            "pus": list(self.pus),
            "usable_cpus": list(self.usable_cpus),
            "offline_cpus": list(self.offline_cpus),
            "cores": [
                {
                    "package": c.package,
                    "die": c.die,
                    "core_id": c.core_id,
                    "cpus": list(c.cpus),
                    "cluster": c.cluster,
                }
                for c in self.cores
            ],
            "packages": list(self.packages),
            "numa_nodes": [{"id": n.id, "cpus": list(n.cpus)} for n in self.numa_nodes],
            "caches": [
                {
                    "level": c.level,
                    "kind": c.kind,
                    "size_bytes": c.size_bytes,
                    "cpus": list(c.cpus),
                    "id": c.id,
                }
                for c in self.caches
            ],
            "l3_domains": [
                {
                    "index": d.index,
                    "size_bytes": d.size_bytes,
                    "cpus": list(d.cpus),
                    "numa_node": d.numa_node,
                }
                for d in self.l3_domains
            ],
            "hybrid_kinds": {k: list(v) for k, v in self.hybrid_kinds.items()},
            "amd_x3d_mode": self.amd_x3d_mode,
            "preferred_core_rank": {str(k): v for k, v in self.preferred_core_rank.items()},
            "governors": {str(k): v for k, v in self.governors.items()},
            "usable_source": self.usable_source,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Topology:
        """Rebuild a Topology from `to_dict()` output; raises KeyError on a missing field."""
        return cls(
            pus=tuple(d["pus"]),
            usable_cpus=tuple(d["usable_cpus"]),
            offline_cpus=tuple(d["offline_cpus"]),
            cores=tuple(
                Core(c["package"], c["die"], c["core_id"], tuple(c["cpus"]), c.get("cluster"))
                for c in d["cores"]
            ),
            packages=tuple(d["packages"]),
            numa_nodes=tuple(NumaNode(n["id"], tuple(n["cpus"])) for n in d["numa_nodes"]),
            caches=tuple(
                Cache(c["level"], c["kind"], c["size_bytes"], tuple(c["cpus"]), c["id"])
                for c in d["caches"]
            ),
            l3_domains=tuple(
                L3Domain(x["index"], x["size_bytes"], tuple(x["cpus"]), x["numa_node"])
                for x in d["l3_domains"]
            ),
            hybrid_kinds={k: tuple(v) for k, v in d.get("hybrid_kinds", {}).items()},
            amd_x3d_mode=d.get("amd_x3d_mode"),
            preferred_core_rank={int(k): v for k, v in d.get("preferred_core_rank", {}).items()},
            governors={int(k): v for k, v in d.get("governors", {}).items()},
            usable_source=d.get("usable_source", "online CPUs"),
        )


def read_topology(root: str | Path = "/", *, live: bool | None = None) -> Topology:
    """Read the topology under sysfs root `root`; `live` (default: root is "/") adds affinity.

    Never raises for missing or malformed files; they only make the result less detailed.
    """
    root = Path(root)
    if live is None:
        live = root.resolve() == Path("/")
    cpu_root = root / "sys/devices/system/cpu"
    cpu_dirs = _numbered_dirs(cpu_root, _CPU_DIR)

    pus = read_cpulist(cpu_root / "online")
    if pus is None:
        pus = tuple(c for c in sorted(cpu_dirs) if read_text(cpu_dirs[c] / "online") != "0")
    present = read_cpulist(cpu_root / "present")
    if present is None:
        present = tuple(sorted(cpu_dirs)) or pus
    online = set(pus)
    offline = tuple(c for c in present if c not in online)

    cores = _read_cores(pus, cpu_dirs)
    packages = tuple(sorted({c.package for c in cores}))
    numa_nodes = _read_numa(root, pus)
    caches = _read_caches(pus, cpu_dirs)
    l3_domains = _l3_domains(caches, numa_nodes)
    usable, source = _read_usable(root, pus, live)

    return Topology(
        pus=pus,
        usable_cpus=usable,
        offline_cpus=offline,
        cores=cores,
        packages=packages,
        numa_nodes=numa_nodes,
        caches=caches,
        l3_domains=l3_domains,
        hybrid_kinds=_read_hybrid(root, pus, cpu_dirs),
        amd_x3d_mode=read_x3d_mode(root),
        preferred_core_rank=_read_ranks(pus, cpu_dirs),
        governors={
            cpu: gov
            for cpu in pus
            if cpu in cpu_dirs and (gov := read_text(cpu_dirs[cpu] / "cpufreq/scaling_governor"))
        },
        usable_source=source,
    )


# --- small readers -------------------------------------------------------------------------


def _read_set(directory: Path, list_name: str, mask_name: str) -> tuple[int, ...] | None:
    """Return CPUs from `<list_name>` or else the hex mask `<mask_name>`; None when neither."""
    cpus = read_cpulist(directory / list_name)
    return cpus if cpus is not None else read_cpumask(directory / mask_name)


def _numbered_dirs(parent: Path, pattern: re.Pattern) -> dict[int, Path]:
    """Return {number: path} for entries of `parent` named like `pattern` (e.g. cpu12)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return {}
    found = {}
    for name in names:
        match = pattern.match(name)
        if match and (parent / name).is_dir():
            found[int(match.group(1))] = parent / name
    return found


# --- pieces --------------------------------------------------------------------------------


def _read_cores(pus: tuple[int, ...], cpu_dirs: dict[int, Path]) -> tuple[Core, ...]:
    """Group online CPUs into cores by (package, die, SMT sibling set, core_id)."""
    online = set(pus)
    groups: dict[tuple, list[int]] = {}
    info: dict[tuple, tuple[int, int, int, int | None]] = {}
    for cpu in pus:
        topo = cpu_dirs[cpu] / "topology" if cpu in cpu_dirs else None
        if topo is None or not topo.is_dir():
            key = (cpu,)
            groups[key] = [cpu]
            info[key] = (0, 0, cpu, None)
            continue
        package = read_int(topo / "physical_package_id")
        package = package if package is not None and package >= 0 else 0
        die = read_int(topo / "die_id")
        die = die if die is not None and die >= 0 else 0
        core_id = read_int(topo / "core_id")
        core_id = core_id if core_id is not None else cpu
        cluster = read_int(topo / "cluster_id")
        siblings = None
        for list_name, mask_name in (
            ("core_cpus_list", "core_cpus"),
            ("thread_siblings_list", "thread_siblings"),
        ):
            siblings = read_cpulist(topo / list_name)
            if siblings is None:
                siblings = read_cpumask(topo / mask_name)
            if siblings:
                break
        sibling_set = frozenset(siblings or ()) & online or frozenset({cpu})
        # core_id splits "siblings" that are really distinct cores (AMD Bulldozer modules).
        key = (package, die, sibling_set, core_id)
        groups.setdefault(key, []).append(cpu)
        info[key] = (package, die, core_id, cluster)
    cores = [
        Core(info[k][0], info[k][1], info[k][2], tuple(sorted(cpus)), info[k][3])
        for k, cpus in groups.items()
    ]
    return tuple(sorted(cores, key=lambda c: c.cpus[0]))


def _read_numa(root: Path, pus: tuple[int, ...]) -> tuple[NumaNode, ...]:
    """Read NUMA nodes with their online CPUs; no node dir gives one node 0 with all CPUs."""
    online = set(pus)
    nodes = []
    for node_id, path in sorted(
        _numbered_dirs(root / "sys/devices/system/node", _NODE_DIR).items()
    ):
        cpus = _read_set(path, "cpulist", "cpumap")
        nodes.append(NumaNode(node_id, tuple(c for c in (cpus or ()) if c in online)))
    covered = {c for n in nodes for c in n.cpus}
    if not nodes or not covered:
        return (NumaNode(0, pus),)
    return tuple(nodes)


def _read_caches(pus: tuple[int, ...], cpu_dirs: dict[int, Path]) -> tuple[Cache, ...]:
    """Read every cache instance once (deduplicated by level, kind and CPU set)."""
    online = set(pus)
    found: dict[tuple, Cache] = {}
    for cpu in pus:
        if cpu not in cpu_dirs:
            continue
        for _, index in sorted(_numbered_dirs(cpu_dirs[cpu] / "cache", _INDEX_DIR).items()):
            level = read_int(index / "level")
            kind = read_text(index / "type")
            size = _cache_size(read_text(index / "size"))
            if level is None or kind not in ("Data", "Instruction", "Unified") or not size:
                continue
            shared = _read_set(index, "shared_cpu_list", "shared_cpu_map") or (cpu,)
            cpus = tuple(c for c in shared if c in online) or (cpu,)
            key = (level, kind, cpus)
            if key not in found:
                found[key] = Cache(level, kind, size, cpus, read_int(index / "id"))
    return tuple(sorted(found.values(), key=lambda c: (c.level, c.kind, c.cpus[0])))


def _cache_size(text: str | None) -> int | None:
    """Return a sysfs cache size ("32768K") in bytes; None when missing or malformed."""
    try:
        return parse_size(text) if text else None
    except ValueError:
        return None


def _l3_domains(caches: tuple[Cache, ...], nodes: tuple[NumaNode, ...]) -> tuple[L3Domain, ...]:
    """Return last-level (highest level present) data/unified caches as L3 domains."""
    llc = [c for c in caches if c.kind != "Instruction"]
    if not llc:
        return ()
    top = max(c.level for c in llc)
    domains = sorted((c for c in llc if c.level == top), key=lambda c: c.cpus[0])
    result = []
    for index, cache in enumerate(domains):
        node = next((n.id for n in nodes if set(cache.cpus) <= set(n.cpus)), None)
        result.append(L3Domain(index, cache.size_bytes, cache.cpus, node))
    return tuple(result)


def _read_hybrid(
    root: Path, pus: tuple[int, ...], cpu_dirs: dict[int, Path]
) -> dict[str, tuple[int, ...]]:
    """Return {"performance": cpus, "efficiency": cpus} for hybrid CPUs, else {}."""
    online = set(pus)
    p_cores = read_cpulist(root / "sys/devices/cpu_core/cpus")
    e_cores = read_cpulist(root / "sys/devices/cpu_atom/cpus")
    if p_cores and e_cores:
        return {
            "performance": tuple(c for c in p_cores if c in online),
            "efficiency": tuple(c for c in e_cores if c in online),
        }
    freqs = {}
    for cpu in pus:
        if cpu in cpu_dirs:
            freq = read_int(cpu_dirs[cpu] / "cpufreq/cpuinfo_max_freq")
            if freq:
                freqs[cpu] = freq
    if len(freqs) != len(pus):
        return {}
    distinct = sorted(set(freqs.values()))
    if len(distinct) < 2:
        return {}
    # Split at the largest ratio gap between neighbouring max frequencies.
    ratio, cut = min((lo / hi, i) for i, (lo, hi) in enumerate(pairwise(distinct)))
    if ratio > _HYBRID_FREQ_RATIO:
        return {}
    slow = set(distinct[: cut + 1])
    return {
        "performance": tuple(c for c in pus if freqs[c] not in slow),
        "efficiency": tuple(c for c in pus if freqs[c] in slow),
    }


def read_x3d_mode(root: Path) -> str | None:
    """Return the AMD 3D V-Cache optimizer mode ("frequency"|"cache"), or None."""
    mode = read_text(root / "sys/devices/platform/AMDI0101:00/amd_x3d_mode")
    if mode:
        return mode
    bus = root / "sys/bus/platform/devices"
    try:
        names = sorted(os.listdir(bus))
    except OSError:
        return None
    for name in names:
        mode = read_text(bus / name / "amd_x3d_mode")
        if mode:
            return mode
    return None


def _read_ranks(pus: tuple[int, ...], cpu_dirs: dict[int, Path]) -> dict[int, int]:
    """Return {cpu: preferred-core rank} (higher is preferred) from amd_pstate or ACPI CPPC."""
    ranks = {}
    for cpu in pus:
        if cpu not in cpu_dirs:
            continue
        rank = read_int(cpu_dirs[cpu] / "cpufreq/amd_pstate_prefcore_ranking")
        if rank is None:
            rank = read_int(cpu_dirs[cpu] / "acpi_cppc/highest_perf")
        if rank is not None:
            ranks[cpu] = rank
    return ranks


def _read_usable(root: Path, pus: tuple[int, ...], live: bool) -> tuple[tuple[int, ...], str]:
    """Return (usable CPUs, where the restriction came from): online ∩ cpuset ∩ affinity."""
    usable = set(pus)
    sources = []
    cpuset = _read_cgroup_cpuset(root)
    if cpuset is not None:
        cpus, where = cpuset
        if usable & set(cpus):
            usable &= set(cpus)
            sources.append(f"{where} = {format_cpulist(cpus)}")
    if live:
        try:
            affinity = os.sched_getaffinity(0)
        except (AttributeError, OSError):
            affinity = None
        if affinity and usable & affinity:
            usable &= affinity
            sources.append(f"sched_getaffinity = {format_cpulist(affinity)}")
    source = " and ".join(sources) if sources else "online CPUs"
    return tuple(sorted(usable)), source


def _read_cgroup_cpuset(root: Path) -> tuple[tuple[int, ...], str] | None:
    """Return (CPUs, description) of this process's cgroup cpuset, or None when unknown."""
    for directory, mount, version in sysfs.candidate_dirs(root, "cpuset"):
        names = ("cpuset.cpus.effective",) if version == 2 else ("cpuset.effective_cpus", "cpuset.cpus")
        for name in names:
            cpus = read_cpulist(directory / name)
            if cpus:
                shown = "/" + str(directory.relative_to(mount)).strip(".")
                return cpus, f"cgroup v{version} {name} of {shown.rstrip('/') or '/'}"
    return None
