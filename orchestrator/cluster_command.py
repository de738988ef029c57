"""``topobench cluster local|status|stop``: a multi-node Ray cluster on this one machine.

``local`` starts a head and then each extra node one after another (parallel ``ray start``
collides on ports), each pinned with ``taskset`` to its own CPUs when there are enough,
and records the temp dir, address and process ids in a state file. ``stop`` signals only
those processes (and any still running under that temp dir), never ``ray stop``.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import psutil
import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli_errors import user_errors
from orchestrator.console import stdout_console
from workloads.errors import UserError

cluster_app = typer.Typer(help="Start, inspect and stop a multi-node Ray cluster on this machine.",
                          no_args_is_help=True)


def state_path() -> Path:
    """Return the state file: ``$TOPOBENCH_STATE_DIR/local_cluster.json`` or under ~/.local/state."""
    base = os.environ.get("TOPOBENCH_STATE_DIR")
    root = Path(base) if base else Path.home() / ".local" / "state" / "topobench"
    return root / "local_cluster.json"


def read_state() -> dict[str, Any] | None:
    """Return the recorded local cluster, or None when nothing (readable) is recorded."""
    try:
        return json.loads(state_path().read_text())
    except (OSError, ValueError):
        return None


def _alive(state: dict[str, Any]) -> bool:
    from cluster.local_cluster import processes_under

    return any(psutil.pid_exists(p) for p in state.get("pids", ())) or bool(processes_under(Path(state["temp_dir"])))


def node_cpus(nodes: int, cpus_per_node: int, usable: list[int]) -> list[tuple[int, ...]] | None:
    """Return each node's CPUs (consecutive slices of ``usable``), or None when there are too few."""
    if nodes * cpus_per_node > len(usable):
        return None
    return [tuple(usable[i * cpus_per_node:(i + 1) * cpus_per_node]) for i in range(nodes)]


def start_local(nodes: int, cpus_per_node: int, object_store_mib: int, console: Console) -> dict[str, Any]:
    """Start the cluster, record it in the state file and return the record.

    Raises:
        UserError: bad counts, or a recorded cluster whose processes still run.
    """
    from cluster.local_cluster import ensure_token, make_temp_dir, start_node, stop_cluster

    if nodes < 1 or cpus_per_node < 1:
        raise UserError(f"--nodes {nodes} and --cpus-per-node {cpus_per_node} must both be at least 1.")
    if object_store_mib < 64:
        raise UserError(f"--object-store-mib {object_store_mib} is too small; give at least 64.")
    state = read_state()
    if state is not None and _alive(state):
        raise UserError(f"A local cluster is already running at {state['address']} (recorded in "
                        f"{state_path()}); stop it first with `topobench cluster stop`.")
    usable = sorted(os.sched_getaffinity(0))
    plan = node_cpus(nodes, cpus_per_node, usable)
    if plan is None:
        console.print(f"Note: {nodes} x {cpus_per_node} CPUs is more than the {len(usable)} usable CPUs; "
                      "nodes are not pinned and share the CPUs.")
    ensure_token()
    temp_dir = make_temp_dir()
    pids: list[int] = []
    address = None
    try:
        for i in range(nodes):
            node = start_node(temp_dir, num_cpus=cpus_per_node, head_address=address,
                              cpus=plan[i] if plan else (), object_store_bytes=object_store_mib * 2**20)
            address = node.address
            pids.extend(node.pids)
            console.print(f"node {i + 1}/{nodes} started{' (head)' if i == 0 else ''}"
                          f"{': CPUs ' + ','.join(map(str, plan[i])) if plan else ''}")
    except BaseException:
        stop_cluster(temp_dir, tuple(pids))
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    record = {"address": address, "temp_dir": str(temp_dir), "pids": sorted(pids), "nodes": nodes,
              "cpus_per_node": cpus_per_node, "pinned": plan is not None,
              "started_at": datetime.now(timezone.utc).isoformat()}
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return record


@cluster_app.command("local")
@user_errors
def local(
    nodes: Annotated[int, typer.Option(help="Nodes to start (the first is the head).")] = 2,
    cpus_per_node: Annotated[int, typer.Option(help="CPUs Ray offers on each node (and pinned to it, when enough).")] = 1,
    object_store_mib: Annotated[int, typer.Option(help="Object store per node, MiB.")] = 128,
) -> None:
    """Start a multi-node Ray cluster on this machine (token auth, no dashboard; stop with `cluster stop`)."""
    console = stdout_console()
    record = start_local(nodes, cpus_per_node, object_store_mib, console)
    console.print(f"Local Ray cluster of {nodes} nodes at {record['address']}")
    console.print(f"use with: topobench sweep FILE --address {record['address']}")
    console.print("stop with: topobench cluster stop")


@cluster_app.command("status")
@user_errors
def status(
    address: Annotated[str | None, typer.Option(
        "--address", help="Ray cluster: host:port or 'auto' (default: the recorded local cluster, else $RAY_ADDRESS).")] = None,
) -> None:
    """List the cluster's nodes with their CPUs and topology summary."""
    from cluster.connection import ray_session
    from cluster.cpulist import format_cpulist
    from cluster.probe import probe_nodes

    state = read_state()
    address = address or (state["address"] if state else None) or os.environ.get("RAY_ADDRESS")
    if not address:
        raise UserError("No cluster to show: pass --address HOST:PORT or start one with "
                        "`topobench cluster local --nodes 2 --cpus-per-node 1`.")
    with ray_session(address):
        nodes = probe_nodes()
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
    from cluster.local_cluster import processes_under, stop_cluster

    path = state_path()
    state = read_state()
    if state is None:
        typer.echo(f"No local cluster is recorded ({path}); nothing to stop.")
        return
    temp_dir = Path(state["temp_dir"])
    count = len(set(state.get("pids", ())) | set(processes_under(temp_dir)))
    stop_cluster(temp_dir, tuple(state.get("pids", ())))
    path.unlink(missing_ok=True)
    shutil.rmtree(temp_dir, ignore_errors=True)
    typer.echo(f"Stopped the local cluster at {state['address']} ({count} processes).")
