"""Sweep files: parse and validate a TOML sweep into a frozen ``SweepSpec``; expand it into trials.

A sweep file names workloads (one table of parameters each; a list value sweeps that
parameter) and matrix dimensions. Every combination is one trial of one run::

    nodes = [1, 2]
    workers_per_node = [1, 2]
    placement = ["compact"]
    mode = "weak"
    repetitions = 5
    min_time = 0.1
    order = "interleaved"

    [workloads."cpu.sqrt_mod"]
    elements = 16384
"""

from __future__ import annotations

import itertools
import json
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cluster.probe import NodeInfo
from orchestrator.planner import Trial, plan_point, select_nodes
from orchestrator.request import MODES
from orchestrator.targets import parse_targets
from workloads.errors import UserError
from workloads.params import parse_params
from workloads.registry import get_workload

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ORDERS = ("sequential", "interleaved", "random")
_MATRIX = ("nodes", "workers_per_node", "placement", "threads_per_worker")
_KEYS = (*_MATRIX, "workloads", "mode", "repetitions", "min_time", "warmup", "order", "seed",
         "reserve_cpus", "scratch", "targets", "until_stable", "max_time", "rel_ci", "max_cv")


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """One point of the matrix before planning: a workload, its parameters and the dimensions."""

    workload: str
    params: Mapping[str, Any]
    nodes: int
    workers_per_node: int
    placement: str
    threads_per_worker: int


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """A validated sweep.

    Attributes:
        workloads: registry names, in file order.
        params: per workload, the parameter sets to sweep (each a full validated set).
        nodes, workers_per_node, placement, threads_per_worker: the matrix dimensions.
        mode: "weak" (each worker does the full work) or "strong" (the work is split).
        repetitions: measured samples per worker and trial.
        min_time_s: calibration target, seconds per sample.
        warmup: warm-up samples per worker after calibration.
        order: "sequential", "interleaved" or "random" (shuffled with ``seed``).
        seed: the random order's seed.
        reserve_cpus: CPUs per node kept free for Ray's own processes.
        scratch: folder on each node for workloads that write files (None: a temp folder).
        targets: service-level targets "workload:metric OP value" on trial medians.
        until_stable, max_time_s, rel_ci: as ``run --until-stable --max-time --rel-ci``.
        max_cv: CV (a fraction) above which a metric is flagged unstable.
    """

    workloads: tuple[str, ...]
    params: Mapping[str, tuple[Mapping[str, Any], ...]]
    nodes: tuple[int, ...] = (1,)
    workers_per_node: tuple[int, ...] = (1,)
    placement: tuple[str, ...] = ("compact",)
    threads_per_worker: tuple[int, ...] = (1,)
    mode: str = "weak"
    repetitions: int = 10
    min_time_s: float = 0.1
    warmup: int = 1
    order: str = "sequential"
    seed: int = 0
    reserve_cpus: int = 0
    scratch: str | None = None
    targets: tuple[str, ...] = ()
    until_stable: bool = False
    max_time_s: float = 60.0
    rel_ci: float = 0.02
    max_cv: float = 0.05

    def to_json(self) -> str:
        """Return the sweep as canonical JSON (stored in ``runs.spec``)."""
        return json.dumps(asdict(self), sort_keys=True, default=str)

    def settings(self) -> dict[str, Any]:
        """Return the per-trial settings the runner reads (the same keys as a ``RunRequest``)."""
        return {"min_time_s": self.min_time_s, "warmup": self.warmup, "repetitions": self.repetitions,
                "scratch": self.scratch, "until_stable": self.until_stable, "max_time_s": self.max_time_s,
                "rel_ci": self.rel_ci, "max_cv": self.max_cv}


def load_sweep(path: Path) -> SweepSpec:
    """Read and validate the sweep file at ``path``.

    Raises:
        UserError: the file is missing or not TOML, or any key or value is invalid.
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UserError(f"Sweep file {str(path)!r} cannot be read ({exc.strerror or exc}); "
                        "give the path of a TOML sweep file (see examples/).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"Sweep file {str(path)!r} is not valid TOML ({exc}); fix the syntax.") from None
    return parse_sweep(data)


def _ints(data: Mapping[str, Any], key: str, default: tuple[int, ...], minimum: int) -> tuple[int, ...]:
    value = data.get(key, list(default))
    values = value if isinstance(value, list) else [value]
    if not values or any(type(v) is not int or v < minimum for v in values):
        raise UserError(f"Sweep key {key} = {value!r} must be an integer >= {minimum} or a non-empty "
                        f"list of them, e.g. {key} = [1, 2].")
    if len(set(values)) != len(values):
        raise UserError(f"Sweep key {key} = {value!r} repeats a value; list each value once.")
    return tuple(values)


def _scalar(data: Mapping[str, Any], key: str, default: Any, kind: type, ok, need: str) -> Any:
    value = data.get(key, default)
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind or not ok(value):
        raise UserError(f"Sweep key {key} = {value!r} is invalid; it must be {need}.")
    return value


def _workload_params(table: Any) -> tuple[tuple[str, ...], dict[str, tuple[Mapping[str, Any], ...]]]:
    if not isinstance(table, dict) or not table:
        raise UserError("Sweep key workloads is missing or empty; add a table per workload, "
                        'e.g. [workloads."cpu.sqrt_mod"] with its parameters.')
    params: dict[str, tuple[Mapping[str, Any], ...]] = {}
    for name, given in table.items():
        cls = get_workload(name)
        if not isinstance(given, dict):
            raise UserError(f'Sweep key workloads."{name}" must be a table of parameters; '
                            f'write [workloads."{name}"] followed by name = value lines.')
        names = list(given)
        choices = []
        for key in names:
            value = given[key]
            if isinstance(value, list):
                if not value:
                    raise UserError(f"Sweep parameter {name}.{key} is an empty list; give at least one value.")
                choices.append(value)
            else:
                choices.append([value])
        params[name] = tuple(parse_params(cls, dict(zip(names, combo))) for combo in itertools.product(*choices))
    return tuple(table), params


def parse_sweep(data: Mapping[str, Any]) -> SweepSpec:
    """Return the validated ``SweepSpec`` of a parsed TOML document.

    Raises:
        UserError: an unknown key, a missing or empty workloads table, an unknown workload
            or parameter, or a value of the wrong type or out of range; the message names
            the key and the fix.
    """
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise UserError(f"Unknown sweep key {unknown[0]!r}; use only: {', '.join(_KEYS)}.")
    workloads, params = _workload_params(data.get("workloads"))
    placement = data.get("placement", ["compact"])
    placements = placement if isinstance(placement, list) else [placement]
    if not placements or any(not isinstance(p, str) or not p for p in placements):
        raise UserError(f"Sweep key placement = {placement!r} must be a placement name or a non-empty "
                        'list of them, e.g. placement = ["compact", "spread"].')
    if len(set(placements)) != len(placements):
        raise UserError(f"Sweep key placement = {placement!r} repeats a value; list each value once.")
    targets = data.get("targets", [])
    if not isinstance(targets, list) or any(not isinstance(t, str) for t in targets):
        raise UserError(f"Sweep key targets = {targets!r} must be a list of strings, "
                        'e.g. targets = ["cpu.sqrt_mod:element_ops_per_s>=1e8"].')
    parse_targets(targets, workloads=workloads)  # unknown workloads/metrics refused before any work
    scratch = data.get("scratch")
    if scratch is not None and not isinstance(scratch, str):
        raise UserError(f"Sweep key scratch = {scratch!r} must be a folder path string.")
    return SweepSpec(
        workloads=workloads,
        params=params,
        nodes=_ints(data, "nodes", (1,), 1),
        workers_per_node=_ints(data, "workers_per_node", (1,), 1),
        placement=tuple(placements),
        threads_per_worker=_ints(data, "threads_per_worker", (1,), 1),
        mode=_scalar(data, "mode", "weak", str, lambda v: v in MODES, f"one of {', '.join(MODES)}"),
        repetitions=_scalar(data, "repetitions", 10, int, lambda v: v >= 1, "an integer >= 1"),
        min_time_s=_scalar(data, "min_time", 0.1, float, lambda v: v > 0, "a number of seconds > 0"),
        warmup=_scalar(data, "warmup", 1, int, lambda v: v >= 0, "an integer >= 0"),
        order=_scalar(data, "order", "sequential", str, lambda v: v in ORDERS, f"one of {', '.join(ORDERS)}"),
        seed=_scalar(data, "seed", 0, int, lambda v: True, "an integer"),
        reserve_cpus=_scalar(data, "reserve_cpus", 0, int, lambda v: v >= 0, "an integer >= 0"),
        scratch=scratch,
        targets=tuple(targets),
        until_stable=_scalar(data, "until_stable", False, bool, lambda v: True, "true or false"),
        max_time_s=_scalar(data, "max_time", 60.0, float, lambda v: v > 0, "a number of seconds > 0"),
        rel_ci=_scalar(data, "rel_ci", 0.02, float, lambda v: 0 < v < 1, "a fraction between 0 and 1"),
        max_cv=_scalar(data, "max_cv", 0.05, float, lambda v: v > 0, "a fraction above 0"),
    )


def sweep_points(spec: SweepSpec) -> tuple[SweepPoint, ...]:
    """Return the matrix points in ``spec.order``.

    sequential: nested loops (workload, parameter set, nodes, workers per node, placement,
    threads). interleaved: round-robin over the series (workload, parameter set, placement,
    threads), so adjacent trials belong to different series whenever there are several and
    every series' points are spread over the sweep. random: all points shuffled with
    ``random.Random(spec.seed)``.
    """
    series: list[list[SweepPoint]] = []
    for workload in spec.workloads:
        for params in spec.params[workload]:
            for placement, threads in itertools.product(spec.placement, spec.threads_per_worker):
                series.append([SweepPoint(workload, params, n, w, placement, threads)
                               for n, w in itertools.product(spec.nodes, spec.workers_per_node)])
    sequential = sorted(
        (p for s in series for p in s),
        key=lambda p: (spec.workloads.index(p.workload), spec.params[p.workload].index(p.params),
                       spec.nodes.index(p.nodes), spec.workers_per_node.index(p.workers_per_node),
                       spec.placement.index(p.placement), spec.threads_per_worker.index(p.threads_per_worker)),
    )
    if spec.order == "sequential":
        return tuple(sequential)
    if spec.order == "interleaved":
        rounds = itertools.zip_longest(*series)
        return tuple(p for round_ in rounds for p in round_ if p is not None)
    shuffled = list(sequential)
    random.Random(spec.seed).shuffle(shuffled)
    return tuple(shuffled)


def expand(spec: SweepSpec, nodes: Sequence[NodeInfo]) -> tuple[Trial, ...]:
    """Plan every point of ``spec`` on the probed ``nodes``, in the sweep's order.

    All points are planned before anything runs, so a point the cluster cannot hold
    (too few nodes or CPUs) is refused before any work.

    Raises:
        UserError: the cluster has fewer nodes than the largest ``nodes`` value, or a node
            cannot hold a point's workers with its placement.
    """
    select_nodes(nodes, max(spec.nodes))  # the largest point first, for a clear message
    return tuple(
        plan_point(p.workload, p.params, select_nodes(nodes, p.nodes), p.workers_per_node,
                   p.placement, p.threads_per_worker, spec.reserve_cpus, spec.mode, cluster=nodes)
        for p in sweep_points(spec)
    )
