"""``topobench env``: the facts of every node that decide how far results can be trusted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cluster.environment import capture_environment, environment_warnings
from cluster.topology import format_bytes
from orchestrator.console import stdout_console

_ROWS = (
    ("hostname", "host"), ("cpu_model", "CPU model"), ("cpu_flags", "SIMD flags"),
    ("cpu_count", "online CPUs"), ("topology_summary", "topology"), ("governor", "governor"),
    ("boost", "turbo/boost"), ("smt_active", "SMT"), ("amd_x3d_mode", "amd_x3d_mode"),
    ("kernel", "kernel"), ("vm", "VM"), ("container", "container"),
    ("cpu_quota_cpus", "CPU quota (CPUs)"), ("load_avg", "load 1/5/15 min"),
    ("memory_available_bytes", "memory available"), ("memory_total_bytes", "memory total"),
    ("python", "Python"), ("numpy", "numpy"), ("blas", "BLAS"), ("ray", "Ray"),
)


def _environment(node: Any) -> dict[str, Any]:
    """Return the environment dict of a NodeInfo or of an already-captured dict."""
    return node if isinstance(node, dict) else node.environment


def node_facts(nodes: Sequence[Any]) -> list[dict[str, Any]]:
    """Return one JSON-ready dict per node: its environment plus node id and topology summary."""
    out = []
    for node in nodes:
        env = dict(_environment(node))
        topo = getattr(node, "topology", None)
        if topo is not None:
            env["node_id"] = node.node_id
            env["topology_summary"] = topo.summary()
        out.append(env)
    return out


def _cell(env: dict[str, Any], key: str) -> str:
    """Format one fact for the table: "-" for unknown, on/off for booleans, binary units for bytes."""
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


def env_table(facts: Sequence[dict[str, Any]]) -> Table:
    """Return a table with one row per fact and one column per node."""
    table = Table(title="topobench env")
    table.add_column("fact")
    for i, env in enumerate(facts):
        table.add_column(env.get("hostname") or f"node {i}")
    for key, label in _ROWS:
        table.add_row(label, *(_cell(env, key) for env in facts))
    return table


def print_warnings(console: Console, nodes: Sequence[Any]) -> list[str]:
    """Print the noise warnings for ``nodes`` (NodeInfo or environment dicts) in yellow; return them."""
    warnings = environment_warnings([_environment(n) for n in nodes])
    for text in warnings:
        console.print(f"[yellow]warning:[/yellow] {text}", highlight=False)
    return warnings


def local_facts() -> list[dict[str, Any]]:
    """Return the facts of this machine alone, without Ray."""
    from cluster.topology import read_topology

    env = capture_environment("/")
    try:
        env["topology_summary"] = read_topology("/").summary()
    except Exception:  # noqa: BLE001 - the topology reader degrades, but env must never fail on it
        env["topology_summary"] = None
    return [env]


def cluster_facts(address: str) -> list[dict[str, Any]]:
    """Return the facts of every alive node of the Ray cluster at ``address``."""
    from cluster.connection import ray_session
    from cluster.probe import probe_nodes

    with ray_session(address):
        return node_facts(probe_nodes())


def env_command(
    address: Annotated[str | None, typer.Option(
        "--address", help="Ray cluster whose nodes to show: host:port or 'auto' "
                          "(default: $RAY_ADDRESS, else this machine without Ray).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show each node's CPU, clocks, SMT, VM/container, quota, load, memory and versions, then warnings."""
    from cluster.connection import resolve_address

    resolved = resolve_address(address)
    facts = local_facts() if resolved is None else cluster_facts(resolved)
    warnings = environment_warnings(facts)
    if json_output:
        typer.echo(json.dumps({"nodes": facts, "warnings": warnings}, indent=1, default=str))
        return
    console = stdout_console()
    console.print(env_table(facts))
    print_warnings(console, facts)
    if not warnings:
        console.print("No warnings: nothing found that would make results noisy.")
