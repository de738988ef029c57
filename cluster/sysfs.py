"""Read sysfs/procfs files that may be missing, unreadable or malformed: None, never an exception."""

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
