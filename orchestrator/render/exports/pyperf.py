"""pyperf's JSON (format version 1.0): ``pyperf.BenchmarkSuite.load`` and ``python -m pyperf compare_to`` read it.

pyperf measures time, so every benchmark is in seconds (or bytes): a throughput X in
"<things>/s" becomes 1/X seconds per thing (lower is better, as pyperf assumes), a time in
s/ms/us/ns becomes seconds, a size in B/bytes stays bytes. Descriptive metrics and other
units have no pyperf unit and are left out (``left_out`` names them). Each topobench run's
invocation is one pyperf run; its values are the rounds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from orchestrator.analysis.series import Benchmark

PYPERF_VERSION = "1.0"
_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_BYTES = ("B", "bytes", "byte")


def _convert(b: Benchmark) -> tuple[str, str, Any] | None:
    """Return (pyperf unit, name suffix, value converter) of a benchmark; None when pyperf has no unit for it."""
    unit, better = b.key.unit, b.key.better
    if better == "higher" and unit.endswith("/s"):
        thing = unit[:-2].strip() or "op"
        return "second", f" (s per {thing})", lambda v: 1.0 / v
    if better == "lower" and unit in _TIME:
        return "second", "", lambda v, f=_TIME[unit]: v * f
    if better is not None and unit in _BYTES:
        return "byte", "", float
    return None


def left_out(benchmarks: Sequence[Benchmark]) -> list[str]:
    """Return the names of benchmarks pyperf has no unit for."""
    return [b.name for b in benchmarks if _convert(b) is None]


def serialize(benchmarks: Sequence[Benchmark], metadata: dict[str, str]) -> str:
    """Return a pyperf BenchmarkSuite file of ``benchmarks`` (rounds as values, invocations as runs)."""
    out = []
    for b in benchmarks:
        conv = _convert(b)
        runs = [(run_id, [conv[2](v) for v in values if v > 0]) for run_id, values in b.rounds] if conv else []
        runs = [(r, v) for r, v in runs if v]
        if not runs:
            continue
        unit, suffix, _ = conv
        out.append({"metadata": {"name": b.name + suffix, "unit": unit, "topobench_series": b.key.id,
                                 "description": b.key.describe()},
                    "runs": [{"metadata": {"topobench_run": run_id, "loops": 1}, "values": values}
                             for run_id, values in runs]})
    kept = {k: v.strip() for k, v in metadata.items() if v and v.strip()}  # pyperf refuses empty values
    return json.dumps({"version": PYPERF_VERSION, "metadata": kept, "benchmarks": out}, indent=1)
