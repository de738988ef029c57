"""Sweep files: parse and validate a TOML sweep into a frozen ``SweepSpec``; list its points.

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

With a ``[capacity]`` table the sweep is a capacity search instead (``topobench capacity``):
one workload with an open-loop ``rate``, one parameter set, and nodes or workers_per_node
listing the N to search::

    nodes = [1, 2, 3]
    [workloads."net.http"]
    service_ms = 2
    [capacity]
    slo = "p99<=5ms"      # required
    load = "20000/s"      # optional: how many nodes does it need?
    resolution = "5%"     # optional
    start_rate = 0        # optional: 0 starts at a quarter of the closed-loop rate
"""

from __future__ import annotations

import itertools
import json
import math
import random
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cluster.placement_policy import Placement, parse_placement
from orchestrator.analysis.capacity import CapacityGoal, parse_goal, parse_load
from orchestrator.analysis.targets import Target, parse_targets
from orchestrator.pipeline.request import check_min_cpus
from orchestrator.records import Point, Shape
from orchestrator.settings import (
    CAPACITY,
    DEFAULT_PLACEMENT,
    MAX_TRIALS,
    SAMPLING_FIELDS,
    Mode,
    Order,
    Sampling,
    SettingError,
    key_name,
)
from workloads.errors import UserError
from workloads.params import parse_params
from workloads.registry import get_workload

if TYPE_CHECKING:
    from orchestrator.pipeline.capacity import CapacitySearch

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_MATRIX = ("nodes", "workers_per_node", "placement", "threads_per_worker")
_SAMPLING_KEYS = {key_name(name): name for name in SAMPLING_FIELDS}
_KEYS = (*_MATRIX, "workloads", "mode", *_SAMPLING_KEYS, "order", "seed", "reserve_cpus", "targets", "capacity")
_CAPACITY_KEYS = ("slo", "resolution", "start_rate", "load")


@dataclass(frozen=True, slots=True)
class SweepSpec:
    """A validated sweep.

    Attributes:
        workloads: registry names, in file order.
        params: per workload, the parameter sets to sweep (each a full validated set).
        given: per workload, the parameter names the file sets (the rest are defaults).
        nodes, workers_per_node, placement, threads_per_worker: the matrix dimensions.
        mode: weak (each worker does the full work) or strong (the work is split).
        reserve_cpus: CPUs per node kept free for Ray's own processes.
        order: sequential, interleaved, or random (shuffled with ``seed``).
        seed: the random order's seed.
        sampling: how every trial is measured.
        targets: service-level targets checked on each trial's figures.
        capacity: with a ``[capacity]`` table, what to search; the sweep is then a capacity search.
    """

    workloads: tuple[str, ...]
    params: Mapping[str, tuple[Mapping[str, Any], ...]]
    given: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    nodes: tuple[int, ...] = (1,)
    workers_per_node: tuple[int, ...] = (1,)
    placement: tuple[Placement, ...] = (DEFAULT_PLACEMENT,)
    threads_per_worker: tuple[int, ...] = (1,)
    mode: Mode = Mode.WEAK
    reserve_cpus: int = 0
    order: Order = Order.SEQUENTIAL
    seed: int = 0
    sampling: Sampling = field(default_factory=Sampling)
    targets: tuple[Target, ...] = ()
    capacity: CapacityGoal | None = None

    @property
    def size(self) -> int:
        """Return how many trials the matrix has."""
        sets = sum(len(self.params[w]) for w in self.workloads)
        return sets * math.prod(len(d) for d in (self.nodes, self.workers_per_node, self.placement,
                                                 self.threads_per_worker))

    def to_json(self) -> str:
        """Return the sweep as canonical JSON (stored in ``runs.spec``)."""
        data = {"workloads": list(self.workloads), "params": {w: list(p) for w, p in self.params.items()},
                "nodes": self.nodes, "workers_per_node": self.workers_per_node,
                "placement": [str(p) for p in self.placement], "threads_per_worker": self.threads_per_worker,
                "mode": self.mode.value, "reserve_cpus": self.reserve_cpus, "order": self.order.value,
                "seed": self.seed, "sampling": asdict(self.sampling), "targets": [str(t) for t in self.targets]}
        if self.capacity is not None:  # absent otherwise: a sweep stored before [capacity] existed still resumes
            data["capacity"] = self.capacity.to_json()
        return json.dumps(data, sort_keys=True, default=str)

    def points(self) -> tuple[Point, ...]:
        """Return the matrix points in ``order``, in time linear in their number.

        sequential: nested loops (workload, parameter set, nodes, workers per node, placement,
        threads). interleaved: round-robin over the series (workload, parameter set, placement,
        threads), so adjacent trials belong to different series whenever there are several and
        every series' points are spread over the sweep. random: all points shuffled with
        ``random.Random(seed)``.
        """
        def point(workload: str, params: Mapping[str, Any], n: int, w: int, placement: Placement,
                  threads: int) -> Point:
            return Point(workload, params, Shape(w, n, placement, threads, self.reserve_cpus, self.mode))

        sets = [(w, p) for w in self.workloads for p in self.params[w]]
        if self.order is Order.INTERLEAVED:
            series = [[point(w, p, n, k, pl, t) for n, k in itertools.product(self.nodes, self.workers_per_node)]
                      for (w, p), pl, t in itertools.product(sets, self.placement, self.threads_per_worker)]
            rounds = itertools.zip_longest(*series)
            return tuple(p for round_ in rounds for p in round_ if p is not None)
        points = [point(w, p, n, k, pl, t) for (w, p), n, k, pl, t in itertools.product(
            sets, self.nodes, self.workers_per_node, self.placement, self.threads_per_worker)]
        if self.order is Order.RANDOM:
            random.Random(self.seed).shuffle(points)
        return tuple(points)

    def capacity_search(self) -> CapacitySearch:
        """Return the capacity search of a sweep with a ``[capacity]`` table (one per N of the varied dimension)."""
        from orchestrator.pipeline.capacity import build_search

        assert self.capacity is not None, "not a capacity sweep"
        (workload,), ((params,),) = self.workloads, self.params.values()
        shape = Shape(1, 1, self.placement[0], self.threads_per_worker[0], self.reserve_cpus, self.mode)
        return build_search(workload, params, self.given.get(workload, ()), self.workers_per_node, self.nodes, shape, self.capacity,
                            self.sampling, source="file")


def load_sweep(path: Path, max_trials: int = MAX_TRIALS) -> SweepSpec:
    """Read and validate the sweep file at ``path``.

    Raises:
        UserError: the file is missing, not UTF-8 or not TOML, any key or value is invalid,
            or the matrix has more than ``max_trials`` trials.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"Sweep file {str(path)!r} cannot be read ({exc.strerror or exc}); "
                        "give the path of a TOML sweep file (see examples/).") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"Sweep file {str(path)!r} is not UTF-8 text (byte {exc.start}); "
                        "save it as UTF-8 TOML.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"Sweep file {str(path)!r} is not valid TOML ({exc}); fix the syntax.") from None
    return parse_sweep(data, max_trials)


def _ints(data: Mapping[str, Any], key: str, minimum: int) -> tuple[int, ...]:
    value = data.get(key, [1])
    values = value if isinstance(value, list) else [value]
    if not values or any(type(v) is not int or v < minimum for v in values):
        raise UserError(f"Sweep key {key} = {value!r} must be an integer >= {minimum} or a non-empty "
                        f"list of them, e.g. {key} = [1, 2].")
    if len(set(values)) != len(values):
        raise UserError(f"Sweep key {key} = {value!r} repeats a value; list each value once.")
    return tuple(values)


def _typed(key: str, value: Any, kind: type, need: str) -> Any:
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind:
        raise UserError(f"Sweep key {key} = {value!r} is invalid; it must be {need}.")
    return value


def _enum(data: Mapping[str, Any], key: str, enum: type, default: Any) -> Any:
    value = data.get(key, default.value)
    try:
        return enum(value)
    except ValueError:
        raise UserError(f"Sweep key {key} = {value!r} is invalid; it must be one of "
                        f"{', '.join(m.value for m in enum)}.") from None


def _sampling(data: Mapping[str, Any]) -> Sampling:
    """Return the ``Sampling`` of the sweep's sampling keys; messages name the sweep key."""
    values = {}
    for key, name in _SAMPLING_KEYS.items():
        if key not in data:
            continue
        kind = {"int": int, "float": float, "bool": bool}.get(str(SAMPLING_FIELDS[name].type))
        value = data[key]
        if kind is None:  # scratch: a folder path or nothing
            if not isinstance(value, str):
                raise UserError(f"Sweep key {key} = {value!r} must be a folder path string.")
        else:
            value = _typed(key, value, kind, {int: "an integer", float: "a number", bool: "true or false"}[kind])
        values[name] = value
    try:
        return Sampling(**values)
    except SettingError as exc:
        raise UserError(f"Sweep key {key_name(exc.field_name)} = {exc.value!r} is invalid; it {exc.rule}.") from None


def _workload_params(table: Any) -> tuple[tuple[str, ...], dict[str, tuple[Mapping[str, Any], ...]],
                                          dict[str, tuple[str, ...]]]:
    if not isinstance(table, dict) or not table:
        raise UserError("Sweep key workloads is missing or empty; add a table per workload, "
                        'e.g. [workloads."cpu.sqrt_mod"] with its parameters.')
    params: dict[str, tuple[Mapping[str, Any], ...]] = {}
    for name, given in table.items():
        cls = get_workload(name)
        if not isinstance(given, dict):
            raise UserError(f'Sweep key workloads."{name}" must be a table of parameters; '
                            f'write [workloads."{name}"] followed by name = value lines.')
        choices = []
        for key, value in given.items():
            if isinstance(value, list) and not value:
                raise UserError(f"Sweep parameter {name}.{key} is an empty list; give at least one value.")
            choices.append(value if isinstance(value, list) else [value])
        sets = [parse_params(cls, dict(zip(given, combo))) for combo in itertools.product(*choices)]
        unique = list({json.dumps(s, sort_keys=True, default=str): s for s in sets}.values())
        if len(unique) != len(sets):  # 7 and 7.0 are one value once parsed: one trial id, one file
            raise UserError(f"Sweep parameters of {name} repeat a value once parsed (e.g. 7 and 7.0); "
                            "list each value once.")
        params[name] = tuple(sets)
    return tuple(table), params, {name: tuple(given) for name, given in table.items()}


def parse_sweep(data: Mapping[str, Any], max_trials: int = MAX_TRIALS) -> SweepSpec:
    """Return the validated ``SweepSpec`` of a parsed TOML document.

    Raises:
        UserError: an unknown key, a missing or empty workloads table, an unknown workload
            or parameter, a value of the wrong type or out of range, or a matrix of more than
            ``max_trials`` trials; the message names the key and the fix.
    """
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise UserError(f"Unknown sweep key {unknown[0]!r}; use only: {', '.join(_KEYS)}.")
    workloads, params, given = _workload_params(data.get("workloads"))
    placement = data.get("placement", [str(DEFAULT_PLACEMENT)])
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
    reserve = _typed("reserve_cpus", data.get("reserve_cpus", 0), int, "an integer >= 0")
    if reserve < 0:
        raise UserError(f"Sweep key reserve_cpus = {reserve} is invalid; it must be an integer >= 0.")
    spec = SweepSpec(
        workloads=workloads,
        params=params,
        given=given,
        nodes=_ints(data, "nodes", 1),
        workers_per_node=_ints(data, "workers_per_node", 1),
        placement=tuple(parse_placement(p) for p in placements),
        threads_per_worker=_ints(data, "threads_per_worker", 1),
        mode=_enum(data, "mode", Mode, Mode.WEAK),
        reserve_cpus=reserve,
        order=_enum(data, "order", Order, Order.SEQUENTIAL),
        seed=_typed("seed", data.get("seed", 0), int, "an integer"),
        sampling=_sampling(data),
        targets=parse_targets(targets, workloads=workloads),
    )
    if spec.size > max_trials:
        raise UserError(f"The sweep matrix has {spec.size:,} trials, more than --max-trials {max_trials:,}; "
                        "sweep fewer values, or raise --max-trials if you mean it.")
    for w in workloads:
        for p in params[w]:
            check_min_cpus(w, p, min(spec.threads_per_worker), "threads_per_worker")
    if "capacity" in data:
        # A search's steps take the capacity defaults of rounds and warm-up unless the file sets them.
        steps = {name: getattr(CAPACITY, name) for name in ("repetitions", "warmup") if name not in data}
        spec = replace(spec, capacity=_capacity_goal(data["capacity"]), sampling=replace(spec.sampling, **steps))
        _check_capacity_matrix(spec, data)
    return spec


def _capacity_goal(table: Any) -> CapacityGoal:
    """Return the goal of a ``[capacity]`` table; numbers are taken for resolution and load too."""
    if not isinstance(table, dict):
        raise UserError('Sweep key capacity must be a table; write [capacity] followed by slo = "p99<=5ms".')
    unknown = sorted(set(table) - set(_CAPACITY_KEYS))
    if unknown and unknown[0] in _KEYS:  # TOML puts every key written after [capacity] into that table
        raise UserError(f"Sweep key {unknown[0]} is inside the [capacity] table; move it above [capacity].")
    if unknown:
        raise UserError(f"Unknown sweep key capacity.{unknown[0]}; use only: {', '.join(_CAPACITY_KEYS)}.")
    if not isinstance(table.get("slo"), str):
        raise UserError('Sweep key capacity.slo is missing or not a string; give the latency objective, '
                        'e.g. slo = "p99<=5ms".')

    def text(key: str, default: str | None) -> str | None:
        value = table.get(key, default)
        if value is not None and (type(value) not in (str, int, float)):
            raise UserError(f"Sweep key capacity.{key} = {value!r} must be a string or a number.")
        return None if value is None else str(value)

    def name(flag: str) -> str:
        return f"Sweep key capacity.{flag[2:].replace('-', '_')} ="

    start = table.get("start_rate", CAPACITY.start_rate_per_s)
    if isinstance(start, str):  # "500/s", like load
        start = parse_load(start, name("--start-rate"))
    return parse_goal(table["slo"], text("resolution", CAPACITY.resolution), start, text("load", None), name)


def _check_capacity_matrix(spec: SweepSpec, data: Mapping[str, Any]) -> None:
    """Refuse a matrix a capacity search cannot walk: it searches one workload and parameter set over one N."""
    if len(spec.workloads) != 1:
        raise UserError(f"A capacity sweep searches one workload; the file lists {len(spec.workloads)} "
                        f"({', '.join(spec.workloads)}): write one sweep file per workload.")
    (workload,) = spec.workloads
    if len(spec.params[workload]) > 1:
        raise UserError(f"A capacity sweep searches one parameter set; [workloads.\"{workload}\"] lists several "
                        "values: write one sweep file per value.")
    for key in ("placement", "threads_per_worker"):
        if len(getattr(spec, key)) > 1:
            raise UserError(f"Sweep key {key} lists several values; a capacity sweep searches one value of {key}.")
    for key, given, why in (("targets", bool(spec.targets), "steps are judged by capacity.slo"),
                            ("until_stable", spec.sampling.until_stable, "every step runs its rounds in full"),
                            ("invocations", "invocations" in data,
                             "each step is judged on the rounds of one invocation"),
                            ("mode", spec.mode is not Mode.WEAK,
                             "the search splits the offered rate among the workers itself"),
                            ("order", spec.order is not Order.SEQUENTIAL, "the search takes each N in turn")):
        if given:
            raise UserError(f"Sweep key {key} = {data[key]!r} does not apply to a capacity sweep ({why}); "
                            "remove it.")
    spec.capacity_search()  # the checks every capacity search makes (searchable, rate not set, rounds)
