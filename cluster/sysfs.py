"""Read the kernel's files (sysfs, procfs, cgroupfs) under a root folder: None, never an exception.

Missing, unreadable or malformed files read as None. The cgroup functions find this process's
cgroup folders for a controller (cpuset, cpu), v2 or v1: the mount points come from
``proc/mounts`` and the process's path from ``proc/self/cgroup`` (or ``proc/self/cpuset``),
never an assumed ``/sys/fs/cgroup``, so containers and unusual mounts read right. Everything
is relative to a root folder so tests can pass an extracted snapshot. See cgroups(7).
"""

from __future__ import annotations

from pathlib import Path

from cluster.cpulist import parse_cpulist, parse_cpumask


def read_text(path: Path) -> str | None:
    """Return a file's stripped text, or None when it is missing or unreadable."""
    try:
        return path.read_text(errors="replace").strip()
    except (OSError, ValueError):
        return None


def read_int(path: Path) -> int | None:
    """Return a file's integer value, or None when missing or not an integer."""
    text = read_text(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def read_cpulist(path: Path) -> tuple[int, ...] | None:
    """Return a CPU list file's CPUs ("0-3,8"), or None when missing or malformed."""
    text = read_text(path)
    if text is None:
        return None
    try:
        return parse_cpulist(text)
    except ValueError:
        return None


def read_cpumask(path: Path) -> tuple[int, ...] | None:
    """Return a hex CPU mask file's CPUs ("0000ffff,00000003"), or None when missing or malformed."""
    text = read_text(path)
    if text is None:
        return None
    try:
        return parse_cpumask(text)
    except ValueError:
        return None


# --- cgroups --------------------------------------------------------------------------------


def membership(root: Path, controller: str) -> tuple[str | None, str | None]:
    """Return (cgroup v2 path, cgroup v1 path of ``controller``) of this process; None when unknown."""
    v2 = v1 = None
    for line in (read_text(root / "proc/self/cgroup") or "").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif controller in controllers.split(","):
            v1 = path
    if controller == "cpuset":
        fallback = read_text(root / "proc/self/cpuset")
        return v2 or fallback, v1 or fallback
    return v2, v1


def mounts(root: Path, controller: str) -> list[tuple[Path, int]]:
    """Return [(mount folder under ``root``, 1|2)] of cgroup2 mounts and v1 mounts of ``controller``."""
    out = []
    for line in (read_text(root / "proc/mounts") or "").splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mount = root / fields[1].replace("\\040", " ").lstrip("/")
        if fields[2] == "cgroup2":
            out.append((mount, 2))
        elif fields[2] == "cgroup" and controller in fields[3].split(","):
            out.append((mount, 1))
    return out


def candidate_dirs(root: Path, controller: str) -> list[tuple[Path, Path, int]]:
    """Return [(folder, its mount, version)]: this process's cgroup first, then its ancestors.

    Ancestors are included because a namespaced mount shows the process at "/" and a
    controller file may only exist higher up.
    """
    v2_path, v1_path = membership(root, controller)
    out = []
    for mount, version in mounts(root, controller):
        rel = v2_path if version == 2 else v1_path
        parts = [p for p in (rel or "").split("/") if p]
        out += [(mount.joinpath(*parts[:i]), mount, version) for i in range(len(parts), -1, -1)]
    return out
