"""Plan which CPUs each worker of a trial gets: named policies and likwid-style expressions.

`plan_workers` is a pure function of a `Topology` and the request. Orders used below:

- *domain order*: the CPUs of one domain numbered physical cores first, i.e. the first SMT
  thread of every core (by lowest CPU), then every second thread, and so on. This is
  likwid's logical numbering (likwid-pin "CPU expressions"), so `N:0-3` on a machine whose
  siblings are adjacent (0/1, 2/3, ...) is CPUs 0,2,4,6.
- *compact order*: L3 domains by index (NUMA nodes when there is no cache information),
  each in domain order.

`reserve_cpus=K` removes the LAST K CPUs of the compact order from the usable set before
planning: the last domain's last SMT siblings, so worker CPUs stay low-numbered and whole
physical cores stay available as long as possible.
"""

from __future__ import annotations

from dataclasses import dataclass

from cluster.cpulist import format_cpulist
from cluster.placement_policy import DOMAIN_NAMES, ExpressionPart, Placement, PlacementError
from cluster.topology import Topology
from workloads.units import format_bytes, plural


@dataclass(frozen=True, slots=True)
class WorkerPlacement:
    """The CPUs one worker is pinned to, with their L3 domain and NUMA node (None if mixed)."""

    cpus: tuple[int, ...]
    l3_domain: int | None
    numa_node: int | None
    pinned: bool = True


def plan_workers(
    topology: Topology,
    placement: Placement,
    workers: int,
    threads_per_worker: int = 1,
    reserve_cpus: int = 0,
) -> tuple[WorkerPlacement, ...]:
    """Return one placement per worker, each with `threads_per_worker` usable CPUs.

    Args:
        topology: the node's topology (only its `usable_cpus` are handed out).
        placement: a parsed policy or CPU expression (``parse_placement``).
        workers: number of workers (>= 1).
        threads_per_worker: CPUs per worker (>= 1).
        reserve_cpus: CPUs kept free for Ray's own processes (the last of the compact order).

    Raises:
        PlacementError: a missing domain, a CPU outside the usable set, or too few
            CPUs/cores for the request.
    """
    if workers < 1 or threads_per_worker < 1:
        raise PlacementError(
            f"Placement needs at least 1 worker and 1 thread per worker, but got {workers} "
            f"workers x {threads_per_worker} threads; pass --workers and --threads-per-worker >= 1."
        )
    policy = placement.policy
    usable = _usable_after_reserve(topology, reserve_cpus)
    need = workers * threads_per_worker
    ask = f"{need} CPUs for {plural(workers, 'worker')} x {plural(threads_per_worker, 'thread')}"

    if policy == "none":
        return tuple(_placement(topology, usable, pinned=False) for _ in range(workers))
    if policy == "compact":
        order = _compact_order(topology, usable)
        _check_count(policy, ask, need, order, "use fewer --workers or --threads-per-worker")
        return _deal(topology, order, workers, threads_per_worker)
    if policy == "spread":
        return _spread(topology, usable, workers, threads_per_worker, ask)
    if policy == "cores":
        return _cores(topology, usable, workers, threads_per_worker)
    if policy == "largest-l3":
        return _largest_l3(topology, usable, workers, threads_per_worker, ask)
    cpus = _resolve_expression(topology, placement, usable)
    if len(cpus) < need:
        raise PlacementError(
            f"Placement {placement.text!r} yields {len(cpus)} CPUs ({format_cpulist(cpus)}), but "
            f"{plural(workers, 'worker')} x {plural(threads_per_worker, 'thread')} need {need}; "
            "list more CPUs or use fewer --workers."
        )
    return _deal(topology, cpus, workers, threads_per_worker)


# --- orders --------------------------------------------------------------------------------


def domain_order(topology: Topology, cpus: tuple[int, ...] | set[int]) -> tuple[int, ...]:
    """Order `cpus` physical cores first: every core's first thread, then second, ... (likwid)."""
    wanted = set(cpus)
    per_core = [[c for c in core.cpus if c in wanted] for core in topology.cores]
    known = {c for core in topology.cores for c in core.cpus}
    per_core += [[c] for c in sorted(wanted - known)]
    per_core = sorted((p for p in per_core if p), key=lambda p: p[0])
    depth = max((len(p) for p in per_core), default=0)
    return tuple(p[level] for level in range(depth) for p in per_core if level < len(p))


def _groups(topology: Topology) -> list[tuple[int, ...]]:
    """Return the cache domains' CPU sets (NUMA nodes when no L3 info), leftovers last."""
    groups = [d.cpus for d in topology.l3_domains] or [n.cpus for n in topology.numa_nodes]
    covered = {c for g in groups for c in g}
    rest = tuple(c for c in topology.pus if c not in covered)
    return [g for g in groups if g] + ([rest] if rest else [])


def _compact_order(topology: Topology, usable: tuple[int, ...] | set[int]) -> tuple[int, ...]:
    """Return usable CPUs domain by domain, each domain physical cores first."""
    allowed = set(usable)
    order: list[int] = []
    for group in _groups(topology):
        order += domain_order(topology, [c for c in group if c in allowed])
    return tuple(order)


def _usable_after_reserve(topology: Topology, reserve_cpus: int) -> tuple[int, ...]:
    """Return the usable CPUs minus the last `reserve_cpus` of the compact order."""
    usable = topology.usable_cpus
    if reserve_cpus < 0 or reserve_cpus >= len(usable):
        raise PlacementError(
            f"--reserve-cpus {reserve_cpus} must be between 0 and {len(usable) - 1}, because "
            f"this node has {len(usable)} usable CPUs ({_usable_text(topology)}); "
            "pass a smaller --reserve-cpus."
        )
    if reserve_cpus == 0:
        return usable
    reserved = set(_compact_order(topology, usable)[-reserve_cpus:])
    return tuple(c for c in usable if c not in reserved)


# --- policies ------------------------------------------------------------------------------


def _spread(
    topology: Topology, usable: tuple[int, ...], workers: int, threads: int, ask: str
) -> tuple[WorkerPlacement, ...]:
    """Deal workers round-robin over L3 domains interleaved across NUMA nodes and packages."""
    allowed = set(usable)
    groups = [g for g in _groups(topology) if allowed & set(g)]
    # Interleave domains so consecutive workers alternate packages/NUMA nodes first.
    by_parent: dict[tuple, list[tuple[int, ...]]] = {}
    for group in groups:
        key = (_package_of(topology, group[0]), topology.numa_node_of(group[0]))
        by_parent.setdefault(key, []).append(group)
    parents = list(by_parent.values())
    interleaved = [
        p[i] for i in range(max(map(len, parents), default=0)) for p in parents if i < len(p)
    ]
    queues = [list(domain_order(topology, [c for c in g if c in allowed])) for g in interleaved]
    total = sum(map(len, queues))
    if total < workers * threads:
        _check_count(
            "spread", ask, workers * threads, usable, "use fewer --workers or --threads-per-worker"
        )
    plans = []
    nxt = 0
    for _ in range(workers):
        for step in range(len(queues)):
            d = (nxt + step) % len(queues)
            if len(queues[d]) >= threads:
                cpus, queues[d] = queues[d][:threads], queues[d][threads:]
                nxt = d + 1
                break
        else:  # no single domain has room left: take from the domains in turn
            cpus = []
            while len(cpus) < threads:
                d = nxt % len(queues)
                if queues[d]:
                    cpus.append(queues[d].pop(0))
                nxt += 1
        plans.append(_placement(topology, cpus))
    return tuple(plans)


def _cores(
    topology: Topology, usable: tuple[int, ...], workers: int, threads: int
) -> tuple[WorkerPlacement, ...]:
    """Give every worker thread its own physical core (first usable thread), compact order."""
    allowed = set(usable)
    firsts = {}
    for core in topology.cores:
        inside = [c for c in core.cpus if c in allowed]
        if inside:
            firsts[inside[0]] = core
    order = [c for c in _compact_order(topology, usable) if c in firsts]
    need = workers * threads
    if len(order) < need:
        raise PlacementError(
            f"Placement 'cores' needs {need} physical cores for {plural(workers, 'worker')} x "
            f"{plural(threads, 'thread')}, but this node has {len(order)} usable cores "
            f"(CPUs {format_cpulist(usable)}); use fewer --workers or --placement compact."
        )
    return _deal(topology, tuple(order), workers, threads)


def _largest_l3(
    topology: Topology, usable: tuple[int, ...], workers: int, threads: int, ask: str
) -> tuple[WorkerPlacement, ...]:
    """Place workers only on the L3 domain(s) with the largest cache (a V-cache CCD by size)."""
    if not topology.l3_domains:
        raise PlacementError(
            "Placement 'largest-l3' needs L3 cache information, but this node reports no "
            "last-level caches; use --placement compact or spread."
        )
    largest = max(d.size_bytes for d in topology.l3_domains)
    allowed = set(usable)
    order: list[int] = []
    for domain in topology.l3_domains:
        if domain.size_bytes == largest:
            order += domain_order(topology, [c for c in domain.cpus if c in allowed])
    need = workers * threads
    if len(order) < need:
        raise PlacementError(
            f"Placement 'largest-l3' needs {ask}, but the largest L3 domains "
            f"({format_bytes(largest)}) have {len(order)} usable CPUs "
            f"({format_cpulist(order) or 'none'}); use fewer --workers or --placement compact."
        )
    return _deal(topology, tuple(order), workers, threads)


# --- expressions ---------------------------------------------------------------------------


def _resolve_expression(topology: Topology, placement: Placement, usable: tuple[int, ...]) -> tuple[int, ...]:
    """Resolve a parsed expression against this node: its ordered list of OS CPUs."""
    allowed = set(usable)
    cpus: list[int] = []
    for part in placement.parts:
        if part.domain is not None:
            cpus += _resolve_domain_part(topology, placement.text, part, allowed)
            continue
        outside = [c for c in part.positions if c not in allowed]
        if outside:
            raise PlacementError(
                f"Placement {placement.text!r} uses CPU {outside[0]}, which is outside the usable set "
                f"{_usable_text(topology, usable)}; choose CPUs from that set."
            )
        cpus += part.positions
    seen: set[int] = set()
    for c in cpus:
        if c in seen:
            raise PlacementError(
                f"Placement {placement.text!r} lists CPU {c} twice; give every worker thread its own CPU."
            )
        seen.add(c)
    return tuple(cpus)


def _resolve_domain_part(topology: Topology, expr: str, part: ExpressionPart, allowed: set[int]) -> list[int]:
    """Resolve one `X<i>:<list>` part with domain-relative, physical-cores-first numbering."""
    letter, index = part.domain, part.index
    domains = _domains(topology, letter)
    name = DOMAIN_NAMES[letter]
    if index >= len(domains):
        raise PlacementError(
            f"Placement {expr!r} asks for {name} {letter}{index}, but this node has "
            f"{len(domains)} ({letter}0-{letter}{len(domains) - 1}); use an existing domain."
            if domains
            else f"Placement {expr!r} asks for {name} {letter}{index}, but this node reports none; "
            "use N:<list> or a plain CPU list."
        )
    order = domain_order(topology, [c for c in domains[index] if c in allowed])
    bad = [p for p in part.positions if p >= len(order)]
    if bad:
        raise PlacementError(
            f"Placement {expr!r} asks for thread {bad[0]} of {name} {letter}{index}, which has "
            f"{len(order)} usable CPUs (0-{len(order) - 1} domain-relative, OS CPUs "
            f"{format_cpulist(order) or 'none'}); use indices below {len(order)}."
        )
    return [order[p] for p in part.positions]


def _domains(topology: Topology, letter: str) -> list[tuple[int, ...]]:
    """Return the CPU sets of the N/S/M/C affinity domains, in domain-number order."""
    if letter == "N":
        return [topology.pus]
    if letter == "S":
        return [
            tuple(c for core in topology.cores if core.package == p for c in core.cpus)
            for p in topology.packages
        ]
    if letter == "M":
        return [n.cpus for n in topology.numa_nodes if n.cpus]
    return [d.cpus for d in topology.l3_domains]


# --- helpers -------------------------------------------------------------------------------


def _deal(
    topology: Topology, order: tuple[int, ...], workers: int, threads: int
) -> tuple[WorkerPlacement, ...]:
    """Cut `order` into consecutive chunks of `threads` CPUs, one per worker."""
    return tuple(
        _placement(topology, order[w * threads : (w + 1) * threads]) for w in range(workers)
    )


def _placement(topology: Topology, cpus, pinned: bool = True) -> WorkerPlacement:
    """Build a WorkerPlacement, naming the L3 domain/NUMA node when all CPUs share one."""
    cpus = tuple(sorted(cpus))
    l3 = {topology.l3_domain_of(c) for c in cpus}
    numa = {topology.numa_node_of(c) for c in cpus}
    return WorkerPlacement(
        cpus=cpus,
        l3_domain=l3.pop() if len(l3) == 1 else None,
        numa_node=numa.pop() if len(numa) == 1 else None,
        pinned=pinned,
    )


def _check_count(policy: str, ask: str, need: int, cpus, fix: str) -> None:
    """Raise PlacementError when fewer than `need` CPUs are available."""
    if len(cpus) < need:
        raise PlacementError(
            f"Placement {policy!r} needs {ask}, but this node has {len(cpus)} usable CPUs "
            f"({format_cpulist(cpus) or 'none'}); {fix}."
        )


def _package_of(topology: Topology, cpu: int) -> int | None:
    """Return the package id of `cpu`, or None when unknown."""
    return next((core.package for core in topology.cores if cpu in core.cpus), None)


def _usable_text(topology: Topology, usable: tuple[int, ...] | None = None) -> str:
    """Describe the usable set and where it came from (cgroup cpuset, affinity)."""
    cpus = topology.usable_cpus if usable is None else usable
    text = format_cpulist(cpus) or "none"
    if usable is not None and tuple(usable) != topology.usable_cpus:
        text += " after --reserve-cpus"
    return f"{text} (from {topology.usable_source})"


__all__ = ["WorkerPlacement", "domain_order", "plan_workers"]
