"""``topobench topology``: this machine's (or every cluster node's) topology and a plan preview."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from cluster.placement import plan_workers
from cluster.topology import Topology, read_topology
from orchestrator.topology_view import render_plan, render_topology
from workloads.errors import UserError


def _local(sysfs: Path | None) -> list[tuple[str, Topology]]:
    if sysfs is None:
        return [("this machine", read_topology("/"))]
    if not (sysfs / "sys/devices/system/cpu").is_dir():
        raise UserError(f"--sysfs {str(sysfs)!r} holds no sys/devices/system/cpu; "
                        "give the folder a sysfs snapshot was extracted into.")
    return [(str(sysfs), read_topology(sysfs, live=False))]


def _cluster(address: str) -> list[tuple[str, Topology]]:
    from cluster.connection import ray_session
    from cluster.probe import probe_nodes

    with ray_session(address):
        return [(f"{n.hostname} ({n.ip}{', head' if n.is_head else ''})", n.topology) for n in probe_nodes()]


def show_topology(console: Console, *, json_output: bool, sysfs: Path | None, plan: str | None,
                  workers: int, threads_per_worker: int, reserve_cpus: int, address: str | None) -> None:
    """Print each machine's topology tree (or JSON) and, with ``plan``, the CPU sets it gives.

    Raises:
        UserError: ``--sysfs`` and ``--address`` together, a snapshot folder without sysfs,
            or a plan that cannot be met.
    """
    if sysfs is not None and address is not None:
        raise UserError("--sysfs and --address cannot be used together; pick one.")
    machines = _cluster(address) if address else _local(sysfs)
    plans = {name: plan_workers(topo, plan, workers, threads_per_worker, reserve_cpus) if plan else None
             for name, topo in machines}
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
