"""``topobench cluster local|status|stop``: a multi-node Ray cluster on this one machine."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from orchestrator.commands.errors import user_errors
from orchestrator.commands.options import AddressOption
from workloads.errors import UserError

cluster_app = typer.Typer(help="Start, inspect and stop a multi-node Ray cluster on this machine.", rich_markup_mode=None,
                          no_args_is_help=True)


@cluster_app.command("local")
@user_errors
def local(
    nodes: Annotated[int, typer.Option(help="Nodes to start (the first is the head).")] = 2,
    cpus_per_node: Annotated[int, typer.Option(help="CPUs Ray offers on each node (and pinned to it, when enough).")] = 1,
    object_store_mib: Annotated[int, typer.Option(help="Object store per node, MiB.")] = 128,
) -> None:
    """Start a multi-node Ray cluster on this machine (token auth, no dashboard; stop with `cluster stop`)."""
    from cluster.local_cluster import start_local

    record = start_local(nodes, cpus_per_node, object_store_mib, typer.echo)
    typer.echo(f"Local Ray cluster of {nodes} nodes at {record['address']}")
    typer.echo(f"use with: topobench sweep FILE --address {record['address']}")
    typer.echo("stop with: topobench cluster stop")


@cluster_app.command("status")
@user_errors
def status(address: AddressOption = None) -> None:
    """List the cluster's nodes (default: the recorded local cluster) with their CPUs and topology."""
    from rich.table import Table

    from cluster.connection import ray_session
    from cluster.cpulist import format_cpulist
    from cluster.local_cluster import read_state
    from cluster.probe import probe_nodes
    from orchestrator.render.console import stdout_console
    from orchestrator.settings import DEADLINES

    state = read_state()
    address = address or (state["address"] if state else None) or os.environ.get("RAY_ADDRESS")
    if not address:
        raise UserError("No cluster to show: pass --address HOST:PORT or start one with "
                        "`topobench cluster local --nodes 2 --cpus-per-node 1`.")
    with ray_session(address):
        nodes = probe_nodes(DEADLINES.probe_s)
    table = Table(title=f"Ray cluster at {address}: {len(nodes)} alive nodes")
    for name in ("node", "hostname", "ip", "head", "Ray CPUs", "CPU set", "topology"):
        table.add_column(name)
    for n in nodes:
        table.add_row(n.node_id[:12], n.hostname, n.ip, "yes" if n.is_head else "", str(n.ray_cpus),
                      format_cpulist(n.topology.usable_cpus), n.topology.summary())
    stdout_console().print(table)


@cluster_app.command("stop")
@user_errors
def stop() -> None:
    """Stop the local cluster that `cluster local` recorded (its processes only, never `ray stop`)."""
    from cluster.local_cluster import state_path, stop_local

    stopped = stop_local()
    if stopped is None:
        typer.echo(f"No local cluster is recorded ({state_path()}); nothing to stop.")
        return
    state, count = stopped
    typer.echo(f"Stopped the local cluster at {state['address']} ({count} processes).")
