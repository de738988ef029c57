"""``topobench topology``: this machine's (or every cluster node's) topology and a plan preview."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.commands.options import AddressOption, JsonOption
from workloads.errors import UserError

if TYPE_CHECKING:
    from cluster.topology import Topology


def _local(sysfs: Path | None) -> list[tuple[str, Topology]]:
    from cluster.topology import read_topology

    if sysfs is None:
        return [("this machine", read_topology("/"))]
    if not (sysfs / "sys/devices/system/cpu").is_dir():
        raise UserError(f"--sysfs {str(sysfs)!r} holds no sys/devices/system/cpu; "
                        "give the folder a sysfs snapshot was extracted into.")
    return [(str(sysfs), read_topology(sysfs, live=False))]


def _cluster(address: str) -> list[tuple[str, Topology]]:
    from cluster.connection import ray_session
    from cluster.probe import probe_nodes
    from orchestrator.settings import DEADLINES

    with ray_session(address):
        return [(f"{n.hostname} ({n.ip}{', head' if n.is_head else ''})", n.topology) for n in probe_nodes(DEADLINES.probe_s)]


def topology(
    json_output: JsonOption = False,
    sysfs: Annotated[Path | None, typer.Option(
        "--sysfs", help="Read an extracted sysfs/procfs snapshot (a folder holding sys/ and proc/) instead of /.")] = None,
    plan: Annotated[str | None, typer.Option(
        help="Show the CPU sets this placement would give (compact, spread, cores, largest-l3, none, or an expression).")] = None,
    workers: Annotated[int, typer.Option(help="Workers per node, with --plan.")] = 1,
    threads_per_worker: Annotated[int, typer.Option(help="CPUs per worker, with --plan.")] = 1,
    reserve_cpus: Annotated[int, typer.Option(help="CPUs per node kept free, with --plan.")] = 0,
    address: AddressOption = None,
) -> None:
    """Show CPU topology: packages, NUMA nodes, L3 domains, cores and SMT siblings, usable CPUs."""
    from cluster.placement import plan_workers
    from cluster.placement_policy import parse_placement
    from orchestrator.render.console import stdout_console
    from orchestrator.render.topology_view import render_plan, render_topology

    if sysfs is not None and address is not None:
        raise UserError("--sysfs and --address cannot be used together; pick one.")
    placement = parse_placement(plan) if plan is not None else None  # refused before reading anything
    machines = _cluster(address) if address else _local(sysfs)
    plans = {name: plan_workers(topo, placement, workers, threads_per_worker, reserve_cpus) if placement else None
             for name, topo in machines}
    console = stdout_console()
    if json_output:
        out = []
        for name, topo in machines:
            entry = {"name": name, "topology": topo.to_dict()}
            if plans[name] is not None:
                entry["plan"] = [{"worker": i, "cpus": list(p.cpus), "l3_domain": p.l3_domain,
                                  "numa_node": p.numa_node, "pinned": p.pinned} for i, p in enumerate(plans[name])]
            out.append(entry)
        console.print_json(json.dumps(out if address else out[0]))
        return
    for name, topo in machines:
        console.print(render_topology(topo, title=name))
        if plans[name] is not None:
            console.print(render_plan(topo, plans[name]))
