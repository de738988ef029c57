"""Find this process's cgroup folders for a controller (cpuset, cpu), v2 or v1.

The mount points come from ``proc/mounts`` and the process's path from
``proc/self/cgroup`` (or ``proc/self/cpuset``), never an assumed ``/sys/fs/cgroup``,
so containers and unusual mounts read right. Everything is relative to a root folder
so tests can pass an extracted snapshot. See cgroups(7).
"""

from __future__ import annotations

from pathlib import Path

from cluster.sysfs import read_text


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
