"""The environment facts of nodes as a table: one row per fact, one column per node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from workloads.units import format_bytes

FACTS = (
    ("hostname", "host"), ("cpu_model", "CPU model"), ("cpu_flags", "SIMD flags"),
    ("cpu_count", "online CPUs"), ("topology_summary", "topology"), ("governor", "governor"),
    ("boost", "turbo/boost"), ("smt_active", "SMT"), ("amd_x3d_mode", "amd_x3d_mode"),
    ("kernel", "kernel"), ("vm", "VM"), ("container", "container"),
    ("cpu_quota_cpus", "CPU quota (CPUs)"), ("load_avg", "load 1/5/15 min"),
    ("memory_available_bytes", "memory available"), ("memory_total_bytes", "memory total"),
    ("python", "Python"), ("numpy", "numpy"), ("blas", "BLAS"), ("ray", "Ray"),
)


def fact_cell(env: Mapping[str, Any], key: str) -> str:
    """Format one fact: "-" for unknown, on/off for booleans, binary units for bytes."""
    versions = env.get("versions") or {}
    if key in ("python", "numpy", "blas", "ray"):
        value = versions.get(key)
    elif key == "load_avg":
        loads = [env.get(f"load_avg_{m}") for m in ("1m", "5m", "15m")]
        return "-" if loads[0] is None else " / ".join(f"{v:.2f}" for v in loads if v is not None)
    else:
        value = env.get(key)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    if key.endswith("_bytes"):
        return format_bytes(int(value))
    if isinstance(value, list):
        return " ".join(value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def env_table(facts: Sequence[Mapping[str, Any]]) -> Table:
    """Return a table with one row per fact and one column per node."""
    table = Table(title="topobench env")
    table.add_column("fact")
    for i, env in enumerate(facts):
        table.add_column(env.get("hostname") or f"node {i}")
    for key, label in FACTS:
        table.add_row(label, *(fact_cell(env, key) for env in facts))
    return table
