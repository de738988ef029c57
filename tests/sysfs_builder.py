"""Write small synthetic sysfs/proc trees for topology and placement tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cluster.cpulist import format_cpulist


@dataclass(frozen=True)
class CacheLevel:
    """One cache level: its type, size text as sysfs writes it ("32768K"), and CPU groups."""

    level: int
    kind: str
    size: str
    groups: Sequence[Sequence[int]]


@dataclass
class Machine:
    """A compact machine description: cores as SMT sibling groups plus optional extras."""

    cores: Sequence[Sequence[int]]
    package_of: dict[int, int] = field(default_factory=dict)
    caches: Sequence[CacheLevel] = ()
    numa: Sequence[Sequence[int]] | None = None
    offline: Iterable[int] = ()
    hex_only: bool = False
    cgroup_v2: tuple[str, str, str] | None = None  # (mount point, cgroup path, cpuset text)
    cgroup_v1: tuple[str, str, str] | None = None
    max_freq_khz: dict[int, int] = field(default_factory=dict)
    hybrid: tuple[str, str] | None = None  # (cpu_core cpus, cpu_atom cpus)
    x3d_mode: str | None = None
    highest_perf: dict[int, int] = field(default_factory=dict)
    governor: str | None = None


def _mask(cpus: Iterable[int]) -> str:
    """Return a sysfs hex mask (32-bit words, most significant first) for `cpus`."""
    value = 0
    for cpu in cpus:
        value |= 1 << cpu
    words = []
    while True:
        words.append(f"{value & 0xFFFFFFFF:08x}")
        value >>= 32
        if not value:
            break
    return ",".join(reversed(words))


def _write(path: Path, text: str) -> None:
    """Write `text` plus a newline, creating parents."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def build_sysfs(root: Path, m: Machine) -> Path:
    """Write machine `m` under `root` (sys/devices/system/..., proc/...) and return `root`."""
    root = Path(root)
    cpu_dir = root / "sys/devices/system/cpu"
    offline = set(m.offline)
    all_cpus = sorted({c for core in m.cores for c in core} | offline)
    online = [c for c in all_cpus if c not in offline]
    _write(cpu_dir / "online", format_cpulist(online))
    _write(cpu_dir / "present", format_cpulist(all_cpus))
    _write(cpu_dir / "possible", format_cpulist(all_cpus))
    _write(cpu_dir / "offline", format_cpulist(offline))
    for core_id, core in enumerate(m.cores):
        for cpu in core:
            base = cpu_dir / f"cpu{cpu}"
            if cpu in offline:
                _write(base / "online", "0")
                continue
            _write(base / "online", "1")
            topo = base / "topology"
            _write(topo / "physical_package_id", str(m.package_of.get(cpu, 0)))
            _write(topo / "die_id", "0")
            _write(topo / "core_id", str(core_id))
            siblings = [c for c in core if c not in offline]
            _write(topo / "thread_siblings", _mask(siblings))
            _write(topo / "core_cpus", _mask(siblings))
            if not m.hex_only:
                _write(topo / "thread_siblings_list", format_cpulist(siblings))
                _write(topo / "core_cpus_list", format_cpulist(siblings))
            if cpu in m.max_freq_khz:
                _write(base / "cpufreq/cpuinfo_max_freq", str(m.max_freq_khz[cpu]))
            if m.governor:
                _write(base / "cpufreq/scaling_governor", m.governor)
            if cpu in m.highest_perf:
                _write(base / "acpi_cppc/highest_perf", str(m.highest_perf[cpu]))
    for cpu in online:
        index = 0
        for cache in m.caches:
            for cache_id, group in enumerate(cache.groups):
                if cpu not in group:
                    continue
                d = cpu_dir / f"cpu{cpu}/cache/index{index}"
                _write(d / "level", str(cache.level))
                _write(d / "type", cache.kind)
                _write(d / "size", cache.size)
                _write(d / "id", str(cache_id))
                shared = [c for c in group if c not in offline]
                _write(d / "shared_cpu_map", _mask(shared))
                if not m.hex_only:
                    _write(d / "shared_cpu_list", format_cpulist(shared))
                index += 1
    if m.numa is not None:
        for node_id, cpus in enumerate(m.numa):
            d = root / f"sys/devices/system/node/node{node_id}"
            _write(d / "cpumap", _mask(cpus))
            if not m.hex_only:
                _write(d / "cpulist", format_cpulist(cpus))
    mounts = ["sysfs /sys sysfs rw 0 0", "proc /proc proc rw 0 0"]
    cgroup_lines = []
    if m.cgroup_v2:
        mount, path, cpus = m.cgroup_v2
        mounts.append(f"cgroup2 {mount} cgroup2 rw,nosuid,nodev,noexec 0 0")
        cgroup_lines.append(f"0::{path}")
        _write(root / mount.lstrip("/") / path.lstrip("/") / "cpuset.cpus.effective", cpus)
    if m.cgroup_v1:
        mount, path, cpus = m.cgroup_v1
        mounts.append(f"cgroup {mount} cgroup rw,nosuid,nodev,noexec,relatime,cpuset 0 0")
        cgroup_lines.append(f"4:cpuset:{path}")
        _write(root / mount.lstrip("/") / path.lstrip("/") / "cpuset.cpus", cpus)
    _write(root / "proc/mounts", "\n".join(mounts))
    if cgroup_lines:
        _write(root / "proc/self/cgroup", "\n".join(cgroup_lines))
    if m.hybrid:
        _write(root / "sys/devices/cpu_core/cpus", m.hybrid[0])
        _write(root / "sys/devices/cpu_atom/cpus", m.hybrid[1])
    if m.x3d_mode:
        _write(root / "sys/devices/platform/AMDI0101:00/amd_x3d_mode", m.x3d_mode)
    return root


def _zen_l1_l2(cores: Sequence[Sequence[int]]) -> list[CacheLevel]:
    """Return per-core L1d/L1i (32 KiB) and L2 (1 MiB) levels."""
    return [
        CacheLevel(1, "Data", "32K", cores),
        CacheLevel(1, "Instruction", "32K", cores),
        CacheLevel(2, "Unified", "1024K", cores),
    ]


def ryzen_7800x3d(root: Path, **extra) -> Path:
    """Ryzen 7 7800X3D: 8 cores / 16 PUs, sibling of N is N+8, one 96 MiB L3 over 0-15."""
    cores = [(n, n + 8) for n in range(8)]
    caches = _zen_l1_l2(cores) + [CacheLevel(3, "Unified", "98304K", [tuple(range(16))])]
    return build_sysfs(root, Machine(cores=cores, caches=caches, numa=[tuple(range(16))], **extra))


def ryzen_7950x3d(root: Path, big_on_high: bool = False, **extra) -> Path:
    """Ryzen 9 7950X3D: 16 cores / 32 PUs, sibling N+16; 96 MiB L3 on 0-7,16-23 (or 8-15,24-31)."""
    cores = [(n, n + 16) for n in range(16)]
    ccd0 = tuple(range(8)) + tuple(range(16, 24))
    ccd1 = tuple(range(8, 16)) + tuple(range(24, 32))
    sizes = ("32768K", "98304K") if big_on_high else ("98304K", "32768K")
    l3 = [CacheLevel(3, "Unified", sizes[0], [ccd0]), CacheLevel(3, "Unified", sizes[1], [ccd1])]
    return build_sysfs(
        root, Machine(cores=cores, caches=_zen_l1_l2(cores) + l3, numa=[tuple(range(32))], **extra)
    )


def epyc_2s(root: Path, **extra) -> Path:
    """Two-socket EPYC: 2 x 16 cores, SMT sibling N+32, 4 CCDs (32 MiB L3) per socket, 1 node each."""
    cores = [(n, n + 32) for n in range(32)]
    package_of = {c: (n // 16) for n in range(32) for c in (n, n + 32)}
    ccds = [tuple(range(4 * k, 4 * k + 4)) + tuple(range(4 * k + 32, 4 * k + 36)) for k in range(8)]
    nodes = [tuple(range(16)) + tuple(range(32, 48)), tuple(range(16, 32)) + tuple(range(48, 64))]
    caches = _zen_l1_l2(cores) + [CacheLevel(3, "Unified", "32768K", ccds)]
    return build_sysfs(
        root, Machine(cores=cores, package_of=package_of, caches=caches, numa=nodes, **extra)
    )


def adjacent_smt(root: Path, n_cores: int = 4, **extra) -> Path:
    """A small Intel-like machine whose SMT siblings are adjacent (0/1, 2/3, ...), one L3."""
    cores = [(2 * n, 2 * n + 1) for n in range(n_cores)]
    caches = [CacheLevel(3, "Unified", "16M", [tuple(range(2 * n_cores))])]
    return build_sysfs(root, Machine(cores=cores, caches=caches, **extra))


def vm_no_smt(root: Path, n_cpus: int = 4, **extra) -> Path:
    """A VM: one CPU per core, no cache dir, no node dir."""
    return build_sysfs(root, Machine(cores=[(n,) for n in range(n_cpus)], **extra))
