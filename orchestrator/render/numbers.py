"""Number formatting for tables: SI prefixes on rates, fixed digits elsewhere."""

from __future__ import annotations

import math

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def si(value: float | None, digits: int = 3) -> str:
    """Return ``value`` with an SI prefix and ``digits`` significant digits ("1.23 G"); "-" for None/NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {prefix}"
    return f"{value:.{digits}g} "


def percent(value: float | None) -> str:
    """Return a fraction as a percentage with one decimal ("2.5%"); "-" for None/NaN."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{100 * value:.1f}%"


def quantity(value: float | None, unit: str) -> str:
    """Return ``value`` with its SI prefix and ``unit``: "11.1 GB/s", "40.6 M element ops/s".

    The prefix joins a symbol unit (one word starting upper-case: B/s, FLOP/s) and stands
    apart before a worded one (element ops/s, lookups/s). "-" for None/NaN.
    """
    text = si(value)
    if text == "-":
        return text
    number, _, prefix = text.partition(" ")
    symbol = unit[:1].isupper() and " " not in unit
    joined = f"{prefix}{unit}" if symbol else f"{prefix} {unit}".strip()
    return f"{number} {joined}"
