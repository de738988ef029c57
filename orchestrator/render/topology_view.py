"""Render a Topology as a rich tree and a placement plan as a rich table."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.tree import Tree

from cluster.cpulist import format_cpulist
from cluster.placement import WorkerPlacement
from cluster.topology import Topology
from workloads.units import format_bytes


def render_topology(topo: Topology, title: str = "Machine") -> Tree:
    """Return a tree: packages > NUMA nodes > L3 domains > cores (SMT siblings), then extras."""
    tree = Tree(f"[bold]{title}[/]: {topo.summary()}")
    for package in topo.packages:
        pkg_cpus = {c for core in topo.cores if core.package == package for c in core.cpus}
        pkg_branch = tree.add(f"Package {package}, CPUs {format_cpulist(pkg_cpus)}")
        for node in topo.numa_nodes:
            node_cpus = set(node.cpus) & pkg_cpus
            if not node_cpus:
                continue
            node_branch = pkg_branch.add(f"NUMA node {node.id}, CPUs {format_cpulist(node_cpus)}")
            domains = [d for d in topo.l3_domains if set(d.cpus) & node_cpus]
            placed: set[int] = set()
            for domain in domains:
                cpus = set(domain.cpus) & node_cpus
                branch = node_branch.add(
                    f"L3 #{domain.index} {format_bytes(domain.size_bytes)}, "
                    f"CPUs {format_cpulist(domain.cpus)}"
                )
                _add_cores(branch, topo, cpus - placed)
                placed |= cpus
            if node_cpus - placed:
                _add_cores(node_branch, topo, node_cpus - placed)
    for kind, cpus in topo.hybrid_kinds.items():
        tree.add(f"{kind} cores: CPUs {format_cpulist(cpus)}")
    if topo.amd_x3d_mode:
        tree.add(f"amd_x3d_mode: {topo.amd_x3d_mode}")
    if topo.offline_cpus:
        tree.add(f"offline CPUs: {format_cpulist(topo.offline_cpus)}")
    tree.add(f"usable CPUs: {format_cpulist(topo.usable_cpus) or 'none'} ({topo.usable_source})")
    return tree


def _add_cores(branch: Tree, topo: Topology, cpus: set[int]) -> None:
    """Add one line per core whose CPUs are in `cpus`, listing its SMT siblings."""
    for core in topo.cores:
        if core.cpus[0] in cpus:
            siblings = ", ".join(f"PU {c}" for c in core.cpus)
            branch.add(f"Core {core.core_id}: {siblings}")


def render_plan(topo: Topology, placements: Sequence[WorkerPlacement]) -> Table:
    """Return a table of worker, CPUs, L3 domain and NUMA node ("-" when mixed or unpinned)."""
    table = Table(title=f"Placement on {len(topo.usable_cpus)} usable CPUs")
    for column in ("worker", "CPUs", "L3 domain", "NUMA node", "pinned"):
        table.add_column(column)
    for rank, placement in enumerate(placements):
        table.add_row(
            str(rank),
            format_cpulist(placement.cpus),
            "-" if placement.l3_domain is None else str(placement.l3_domain),
            "-" if placement.numa_node is None else str(placement.numa_node),
            "yes" if placement.pinned else "no",
        )
    return table
