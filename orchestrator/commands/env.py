"""``topobench env``: the facts of every node that decide how far results can be trusted."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from orchestrator.commands.options import JsonOption

ADDRESS_HELP = ("Ray cluster whose nodes to show: host:port or 'auto' "
                "(default: $RAY_ADDRESS, else this machine without Ray).")


def local_facts() -> list[dict[str, Any]]:
    """Return the facts of this machine alone, without Ray."""
    from cluster.environment import capture_environment
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
    from orchestrator.settings import DEADLINES

    with ray_session(address):
        return [{**n.environment, "node_id": n.node_id, "topology_summary": n.topology.summary()}
                for n in probe_nodes(DEADLINES.probe_s)]


def env(
    address: Annotated[str | None, typer.Option("--address", help=ADDRESS_HELP)] = None,
    json_output: JsonOption = False,
) -> None:
    """Show each node's CPU, clocks, SMT, VM/container, quota, load, memory and versions, then warnings."""
    from cluster.address import resolve_address
    from cluster.environment import environment_warnings

    resolved = resolve_address(address)
    facts = local_facts() if resolved is None else cluster_facts(resolved)
    if json_output:
        typer.echo(json.dumps({"nodes": facts, "warnings": environment_warnings(facts)}, indent=1, default=str))
        return
    from orchestrator.render.console import stdout_console
    from orchestrator.render.env_table import env_table
    from orchestrator.render.notes import print_warnings

    console = stdout_console()
    console.print(env_table(facts))
    if not print_warnings(console, facts):
        console.print("No warnings: nothing found that would make results noisy.")
