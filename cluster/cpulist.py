"""Parse and format Linux CPU lists ("0-3,8") and sysfs hex CPU masks ("0000ffff,00000003")."""

from __future__ import annotations

from collections.abc import Iterable


def parse_cpulist(text: str) -> tuple[int, ...]:
    """Parse a kernel CPU list such as "0-3,8,10-11" into sorted unique CPU ids; "" gives ().

    Raises ValueError on a malformed item or a descending range.
    """
    cpus: set[int] = set()
    for item in text.strip().split(","):
        item = item.strip()
        if not item:
            continue
        if "-" in item:
            lo_text, _, hi_text = item.partition("-")
            stride = 1
            if ":" in hi_text:  # kernel "0-7:2/4" group syntax is rare; support "a-b:step" only
                hi_text, _, stride_text = hi_text.partition(":")
                stride = int(stride_text.split("/")[0])
            lo, hi = int(lo_text), int(hi_text)
            if lo < 0 or hi < lo or stride < 1:
                raise ValueError(f"invalid CPU range {item!r} in CPU list {text!r}")
            cpus.update(range(lo, hi + 1, stride))
        else:
            cpu = int(item)
            if cpu < 0:
                raise ValueError(f"invalid CPU {item!r} in CPU list {text!r}")
            cpus.add(cpu)
    return tuple(sorted(cpus))


def format_cpulist(cpus: Iterable[int]) -> str:
    """Format CPU ids as a compact kernel CPU list ("0-3,8"); no CPUs give ""."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def parse_cpumask(text: str) -> tuple[int, ...]:
    """Parse a sysfs hex CPU mask (comma-separated 32-bit words, most significant first).

    "" gives (); raises ValueError on a word that is not hexadecimal.
    """
    words = [w.strip() for w in text.strip().split(",")]
    value = 0
    for word in words:
        value = (value << 32) | (int(word, 16) if word else 0)
    cpus: list[int] = []
    bit = 0
    while value:
        if value & 1:
            cpus.append(bit)
        value >>= 1
        bit += 1
    return tuple(cpus)
