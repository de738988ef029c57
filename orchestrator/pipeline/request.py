"""The validated, frozen description of what a user asked ``run`` to do."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cluster.placement_policy import parse_placement
from orchestrator.analysis.targets import Target, parse_targets
from orchestrator.records import Point, Shape
from orchestrator.settings import DEFAULT_SUITE, RESULTS_DIR, Mode, Sampling, choice
from orchestrator.store.location import shown_location
from workloads.errors import UserError
from workloads.params import parse_params
from workloads.registry import get_workload, load_workloads


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A validated run request: workloads with full parameter sets, one shape, the sampling.

    Attributes:
        workloads: registry names, in run order.
        params: per workload, its full validated parameter set.
        shape: workers, nodes, placement, threads, reserve, mode.
        sampling: how every trial is measured.
        targets: service-level targets, checked on each trial's figures.
        results: the dataset: a folder, or a URI such as s3://bucket/prefix (credentials never stored).
    """

    workloads: tuple[str, ...] = DEFAULT_SUITE
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    shape: Shape = field(default_factory=Shape)
    sampling: Sampling = field(default_factory=Sampling)
    targets: tuple[Target, ...] = ()
    results: str | Path = RESULTS_DIR

    def to_json(self) -> str:
        """Return the request as canonical JSON (stored in ``runs.spec``)."""
        shape = {**asdict(self.shape), "placement": str(self.shape.placement), "mode": self.shape.mode.value}
        data = {"workloads": list(self.workloads), "params": self.params, "shape": shape,
                "sampling": asdict(self.sampling), "targets": [str(t) for t in self.targets],
                "results": shown_location(self.results)}
        return json.dumps(data, sort_keys=True, default=str)

    def points(self) -> tuple[Point, ...]:
        """Return one point per workload, in run order."""
        return tuple(Point(w, self.params[w], self.shape) for w in self.workloads)


def parse_param_options(options: Sequence[str], workloads: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Split ``--param workload.name=value`` options into ``{workload: {name: value}}``.

    The workload part is the longest registered workload name that prefixes the key, so
    dotted workload names (``memory.stream.size_mib``) work.

    Raises:
        UserError: no ``=``, an unknown workload, or a workload not in this run.
    """
    known = load_workloads()
    out: dict[str, dict[str, str]] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise UserError(f"--param {option!r} has no '='; write --param WORKLOAD.PARAM=VALUE, "
                            "e.g. --param memory.stream.size_mib=512.")
        owners = [w for w in known if key.startswith(w + ".")]
        if not owners:
            raise UserError(f"--param {option!r} names no known workload; write WORKLOAD.PARAM=VALUE "
                            f"with WORKLOAD one of: {', '.join(known)}.")
        workload = max(owners, key=len)
        if workload not in workloads:
            raise UserError(f"--param {option!r} is for {workload}, which this run does not include; "
                            f"add {workload} to the workloads or drop the option.")
        out.setdefault(workload, {})[key[len(workload) + 1:]] = value
    return out


def build_shape(workers: int, nodes: int, placement: str, threads_per_worker: int, reserve_cpus: int,
                mode: str) -> Shape:
    """Return a validated ``Shape`` from command-line values.

    Raises:
        UserError: a count below its minimum, a malformed placement, or an unknown mode.
    """
    for name, value, least in (("workers", workers, 1), ("nodes", nodes, 1),
                               ("threads-per-worker", threads_per_worker, 1), ("reserve-cpus", reserve_cpus, 0)):
        if value < least:
            raise UserError(f"--{name} {value} must be at least {least}.")
    return Shape(workers, nodes, parse_placement(placement), threads_per_worker, reserve_cpus,
                 choice(Mode, mode, "--mode"))


def check_min_cpus(workload: str, params: Mapping[str, Any], threads_per_worker: int, where: str) -> None:
    """Refuse a worker size below what ``workload`` needs (``Workload.min_cpus``), before any work.

    Raises:
        UserError: ``threads_per_worker`` is smaller than the workload's minimum.
    """
    need = get_workload(workload).min_cpus(params)
    if threads_per_worker < need:
        raise UserError(f"{workload} needs at least {need} CPUs per worker, but {where} is "
                        f"{threads_per_worker}; raise it to {need} or more.")


def build_request(workloads: Sequence[str], param_options: Sequence[str], shape: Shape, sampling: Sampling,
                  targets: Sequence[str] = (), results: str | Path = RESULTS_DIR) -> RunRequest:
    """Return a validated ``RunRequest``; everything a user can get wrong is refused here.

    Raises:
        UserError: an unknown workload or parameter, a value out of range, a target for a
            workload not in the run, or a worker smaller than a workload needs.
    """
    names = tuple(workloads) or DEFAULT_SUITE
    for i, name in enumerate(names):
        get_workload(name)
        if name in names[:i]:  # two trials of one point would share a trial id and its files
            raise UserError(f"Workload {name} is listed twice; list each workload once "
                            "(a sweep file runs one workload with several parameter sets).")
    given = parse_param_options(param_options, names)
    params = {name: parse_params(get_workload(name), given.get(name, {})) for name in names}
    for name in names:
        check_min_cpus(name, params[name], shape.threads_per_worker, "--threads-per-worker")
    return RunRequest(names, params, shape, sampling, parse_targets(targets, workloads=names), results)
