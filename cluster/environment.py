"""Capture the facts of a node that decide how far its results can be trusted.

Reads procfs/sysfs under a root (default ``/``) and, for the live machine only, psutil and
the running interpreter; every field that a machine does not expose is None, never an
exception. ``environment_warnings`` turns a list of captured environments into the
warnings that make results noisy (after pyperf's ``system show`` and Phoronix's checks).
"""

from __future__ import annotations

import os
import platform
import socket
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from cluster import sysfs
from cluster.sysfs import read_cpulist, read_text
from cluster.topology import read_x3d_mode

_IMPORTANT_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile", "asimd", "sve")

LOAD_PER_CPU_LIMIT = 0.5
"""1-minute load average per CPU above which a node counts as busy."""

# Values of /sys/class/dmi/id/{sys_vendor,product_name} that name a hypervisor (as
# systemd-detect-virt's table does), lower-cased substring -> name.
_DMI_VMS = (
    ("kvm", "kvm"), ("qemu", "qemu"), ("vmware", "vmware"), ("virtualbox", "oracle"),
    ("innotek", "oracle"), ("xen", "xen"), ("bochs", "bochs"), ("parallels", "parallels"),
    ("bhyve", "bhyve"), ("microsoft corporation", "microsoft"), ("amazon ec2", "amazon"),
    ("google compute engine", "google"), ("openstack", "openstack"), ("hetzner", "kvm"),
)
_CGROUP_CONTAINERS = (("docker", "docker"), ("kubepods", "kubernetes"), ("libpod", "podman"),
                      ("lxc", "lxc"), ("containerd", "containerd"))


_CPU_IDENTITY = {"cpu family": "cpu_family", "model": "cpu_model_number", "stepping": "cpu_stepping",
                 "microcode": "microcode", "CPU implementer": "cpu_family", "CPU part": "cpu_model_number",
                 "CPU revision": "cpu_stepping"}
"""/proc/cpuinfo keys of the first CPU that say which silicon it is (x86, then Arm's names)."""


def _cpuinfo(root: Path) -> tuple[str | None, list[str] | None, bool | None, dict[str, str | None]]:
    """Return (model, important SIMD flags, hypervisor flag, identity) from proc/cpuinfo; None when absent.

    identity holds ``_CPU_IDENTITY``'s fields of the first CPU (family, model number, stepping,
    microcode), each None when not listed.
    """
    identity: dict[str, str | None] = dict.fromkeys(_CPU_IDENTITY.values())
    text = read_text(root / "proc/cpuinfo")
    if text is None:
        return None, None, None, identity
    model, flags = None, None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if model is None and key in ("model name", "Model", "cpu model"):
            model = value.strip()
        elif flags is None and key in ("flags", "Features"):
            flags = value.split()
        elif key in _CPU_IDENTITY and identity[_CPU_IDENTITY[key]] is None:
            identity[_CPU_IDENTITY[key]] = value.strip() or None
    if flags is None:
        return model, None, None, identity
    return model, [f for f in _IMPORTANT_FLAGS if f in flags], "hypervisor" in flags, identity


def _meminfo(root: Path) -> dict[str, int]:
    """Return proc/meminfo's fields in bytes ({} when absent)."""
    out = {}
    for line in (read_text(root / "proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    return out


def _loadavg(root: Path) -> tuple[float | None, float | None, float | None]:
    """Return the 1, 5 and 15-minute load averages from proc/loadavg (None when absent)."""
    fields = (read_text(root / "proc/loadavg") or "").split()
    try:
        return float(fields[0]), float(fields[1]), float(fields[2])
    except (IndexError, ValueError):
        return None, None, None


def _boost(cpu_sys: Path) -> bool | None:
    """Return whether turbo/boost is on: cpufreq/boost, else intel_pstate/no_turbo; None if unknown."""
    boost = read_text(cpu_sys / "cpufreq/boost")
    if boost in ("0", "1"):
        return boost == "1"
    no_turbo = read_text(cpu_sys / "intel_pstate/no_turbo")
    if no_turbo in ("0", "1"):
        return no_turbo == "0"
    boost = read_text(cpu_sys / "cpu0/cpufreq/boost")  # amd-pstate per-policy file
    if boost in ("0", "1"):
        return boost == "1"
    return None


def _cpu_quota(root: Path) -> float | None:
    """Return the cgroup CPU quota in CPUs (v2 cpu.max, v1 cfs_quota/period); None when unlimited/unknown."""
    for directory, _, cgroup_version in sysfs.candidate_dirs(root, "cpu"):
        if cgroup_version == 2:
            fields = (read_text(directory / "cpu.max") or "").split()
            if len(fields) != 2:
                continue
            quota, period = fields
        else:
            quota, period = read_text(directory / "cpu.cfs_quota_us"), read_text(directory / "cpu.cfs_period_us")
            if quota is None or period is None:
                continue
        try:
            q, p = int(quota), int(period)
        except ValueError:  # "max": no limit
            return None
        return q / p if q > 0 and p > 0 else None
    return None


def _virtualization(root: Path, hypervisor_flag: bool | None) -> tuple[str | None, str | None]:
    """Return (VM name, container name), "none" where checked and absent, None when unknown."""
    vm: str | None = None
    dmi = " ".join(filter(None, (read_text(root / f"sys/class/dmi/id/{n}")
                                 for n in ("sys_vendor", "product_name", "bios_vendor")))).lower()
    for needle, name in _DMI_VMS:
        if needle in dmi and not (needle == "microsoft corporation" and "virtual" not in dmi):
            vm = name
            break
    if vm is None and hypervisor_flag:
        vm = "unknown hypervisor"
    if vm is None and (dmi or hypervisor_flag is not None):
        vm = "none"
    container: str | None = None
    if (root / ".dockerenv").exists():
        container = "docker"
    elif (root / "run/.containerenv").exists():
        container = "podman"
    else:
        env_text = read_text(root / "proc/1/environ")
        cgroup = (read_text(root / "proc/1/cgroup") or "") + (read_text(root / "proc/self/cgroup") or "")
        if env_text and "container=" in env_text:
            for item in env_text.split("\0"):
                if item.startswith("container="):
                    container = item.split("=", 1)[1] or "container"
        if container is None:
            for needle, name in _CGROUP_CONTAINERS:
                if needle in cgroup:
                    container = name
                    break
        if container is None and (cgroup or env_text is not None):
            container = "none"
    return vm, container


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _versions() -> dict[str, str | None]:
    """Return versions of Python, numpy, Ray, pyarrow and the BLAS threadpoolctl finds."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("numpy", "ray", "pyarrow"):
        out[name] = _package_version(name)
    try:
        import numpy  # noqa: F401  (loads the BLAS so threadpoolctl can see it)
        from threadpoolctl import threadpool_info

        out["blas"] = ", ".join(
            f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"
        ) or None
    except Exception:  # noqa: BLE001 - threadpoolctl inspects native libraries; never fail a probe on it
        out["blas"] = None
    return out


def _compiler() -> dict[str, Any] | None:
    """Return numba's compiler facts; None where they cannot be read (a probe never fails)."""
    from workloads.kernels import compiler_facts

    try:
        return compiler_facts()
    except Exception:  # noqa: BLE001 - LLVM inspects the CPU; a probe must not fail on it
        return None


SIMULATED_HOST_ENV = "TOPOBENCH_SIMULATED_HOST"
"""A testing seam: a node whose processes see this variable counts as a host of its own.

Set per node (``ray.cluster_utils.Cluster.add_node(env_vars=...)``, or in the environment of
``ray start``), it lets the nodes of one machine stand for distinct hosts, so clock offsets,
per-host CPU pools and node agents run their multi-host paths. Nodes simulated so share the
machine's CPUs: use ``--placement none``. Never set it on a real cluster.
"""


def local_host_id() -> str:
    """Return this machine's id as ``NodeInfo.host_id`` gives it: the boot id, else the hostname.

    Under ``SIMULATED_HOST_ENV`` the id is the machine's followed by ``/`` and its value.
    """
    machine = read_text(Path("/proc/sys/kernel/random/boot_id")) or socket.gethostname()
    simulated = os.environ.get(SIMULATED_HOST_ENV)
    return f"{machine}/{simulated}" if simulated else machine


def capture_environment(root: str | Path = "/") -> dict[str, Any]:
    """Return this node's environment facts; every field the machine does not expose is None.

    Keys: hostname, boot_id (the kernel's random id of this boot: one per machine, shared by
    its containers), host_id (``local_host_id`` on the live machine, else the boot id),
    cpu_model, cpu_flags (the SIMD flags among SSE4.2/AVX/AVX2/FMA/AVX-512/AMX/NEON/SVE
    present), cpu_count (online logical CPUs), kernel, memory_total_bytes,
    memory_available_bytes, memory_free_bytes, governor (of cpu0's cpufreq policy), boost
    (turbo/boost on: ``cpufreq/boost`` or not ``intel_pstate/no_turbo``), smt_active,
    amd_x3d_mode ("frequency"|"cache"), vm (hypervisor name, "none", or None when unknown),
    container (docker/podman/kubernetes/lxc/…, "none", or None), cpu_quota_cpus (cgroup
    quota in CPUs, None when unlimited or unknown), load_avg_1m/5m/15m, versions
    (python, numpy, ray, pyarrow, blas), compiler (``workloads.kernels.compiler_facts``:
    numba, llvmlite and LLVM versions, the target CPU and features numba compiles the
    kernels for), cpu_family, cpu_model_number, cpu_stepping and microcode of the first CPU
    (Arm: implementer, part, revision) and arch (the machine's architecture): these tell one
    silicon from another. A root other than "/" reads only files under it (compiler and arch
    are then None: they describe this machine).
    """
    root = Path(root)
    live = root.resolve() == Path("/")
    model, flags, hypervisor, identity = _cpuinfo(root)
    cpu_sys = root / "sys/devices/system/cpu"
    smt = read_text(cpu_sys / "smt/active")
    mem = _meminfo(root)
    load = _loadavg(root)
    vm, container = _virtualization(root, hypervisor)
    online = read_cpulist(cpu_sys / "online")
    cpu_count = len(online) if online else None
    hostname = read_text(root / "proc/sys/kernel/hostname")
    kernel = read_text(root / "proc/sys/kernel/osrelease")
    if live:
        hostname = socket.gethostname()
        kernel = kernel or platform.release()
        cpu_count = cpu_count or os.cpu_count()
        if not mem:
            import psutil

            vmem = psutil.virtual_memory()
            mem = {"MemTotal": int(vmem.total), "MemAvailable": int(vmem.available), "MemFree": int(vmem.free)}
    return {
        "hostname": hostname,
        "boot_id": read_text(root / "proc/sys/kernel/random/boot_id"),
        "host_id": local_host_id() if live else read_text(root / "proc/sys/kernel/random/boot_id"),
        "cpu_model": model,
        "cpu_flags": flags,
        **identity,
        "arch": (platform.machine() or None) if live else None,
        "cpu_count": cpu_count,
        "kernel": kernel,
        "memory_total_bytes": mem.get("MemTotal"),
        "memory_available_bytes": mem.get("MemAvailable"),
        "memory_free_bytes": mem.get("MemFree"),
        "governor": read_text(cpu_sys / "cpu0/cpufreq/scaling_governor"),
        "boost": _boost(cpu_sys),
        "smt_active": None if smt not in ("0", "1") else smt == "1",
        "amd_x3d_mode": read_x3d_mode(root),
        "vm": vm,
        "container": container,
        "cpu_quota_cpus": _cpu_quota(root),
        "load_avg_1m": load[0],
        "load_avg_5m": load[1],
        "load_avg_15m": load[2],
        "versions": _versions(),
        "compiler": _compiler() if live else None,
    }


def environment_warnings(envs: list[dict[str, Any]]) -> list[str]:
    """Return one sentence per condition that makes results noisy, over nodes' environments.

    Per node: scaling governor not ``performance``, turbo/boost on, 1-minute load above
    0.5 per CPU. Across nodes: different kernel, governor or CPU model. Unknown (None)
    fields raise no warning. Identical lines (several nodes on one host) appear once. Empty
    list when nothing is wrong.
    """
    warnings = []
    for env in envs:
        host = env.get("hostname") or "this node"
        governor = env.get("governor")
        if governor is not None and governor != "performance":
            warnings.append(f"{host}: CPU frequency governor is {governor!r}, not 'performance'; "
                            "clock changes add noise (sudo cpupower frequency-set -g performance).")
        if env.get("boost") is True:
            warnings.append(f"{host}: turbo/boost is on, so clocks depend on temperature and load; "
                            "turn it off for stable figures (echo 0 > /sys/devices/system/cpu/cpufreq/boost).")
        load, cpus = env.get("load_avg_1m"), env.get("cpu_count")
        if load is not None and cpus and load / cpus > LOAD_PER_CPU_LIMIT:
            warnings.append(f"{host}: load average {load:.2f} on {cpus} CPUs is above "
                            f"{LOAD_PER_CPU_LIMIT} per CPU; other work will disturb the measurements.")
    if len(envs) > 1:
        for key, label in (("kernel", "kernel"), ("governor", "governor"), ("cpu_model", "CPU model")):
            values = {env.get("hostname") or f"node {i}": env.get(key) for i, env in enumerate(envs)}
            if len({v for v in values.values() if v is not None}) > 1:
                shown = ", ".join(f"{h}={v}" for h, v in values.items())
                warnings.append(f"Nodes differ in {label} ({shown}); their results are not directly comparable.")
    return list(dict.fromkeys(warnings))  # nodes sharing a host give the same host-level line once
