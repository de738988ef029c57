"""Sizes and counts in words: one parser for byte sizes, one formatter, one plural."""

from __future__ import annotations

import re

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
TIB = 1 << 40

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "b": 1, "k": KIB, "kb": 1000, "kib": KIB, "m": MIB, "mb": 1000**2, "mib": MIB,
            "g": GIB, "gb": 1000**3, "gib": GIB, "t": TIB, "tb": 1000**4, "tib": TIB}


def parse_size(text: str) -> int:
    """Return the bytes of a size such as "64MiB", "32 KiB", "32768K" (sysfs), "4096" or "1.5GB".

    Binary suffixes (KiB, MiB, GiB, TiB and bare K, M, G, T as sysfs writes them) are powers of
    1024, decimal ones (KB, MB, GB, TB) powers of 1000; no suffix means bytes.

    Raises:
        ValueError: the text is not a non-negative number with one of those suffixes.
    """
    match = _SIZE.match(text or "")
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _FACTORS:
        raise ValueError(f"not a size: {text!r}")
    return int(float(match.group(1)) * _FACTORS[unit])


def format_bytes(size_bytes: int) -> str:
    """Return a byte count in binary units: "96 MiB", "1.25 MiB", "48 KiB", "512 B"."""
    for unit, scale in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size_bytes >= scale:
            value = size_bytes / scale
            return f"{value:g} {unit}" if value == int(value) else f"{value:.2f} {unit}"
    return f"{size_bytes} B"


def plural(count: int, noun: str) -> str:
    """Return "1 core" / "2 cores"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
