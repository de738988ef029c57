"""The validated, frozen description of what a user asked ``run`` (or a sweep point) to do."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workloads.errors import UserError
from workloads.params import parse_params
from workloads.registry import get_workload, load_workloads

DEFAULT_SUITE = ("cpu.sqrt_mod", "memory.stream", "cache.lru")
MODES = ("weak", "strong")


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A validated run request.

    Attributes:
        workloads: registry names, in run order.
        params: per workload, its full validated parameter set.
        workers: workers per node.
        nodes: how many of the cluster's nodes to use (stable order, head last).
        repetitions: measured samples per worker.
        warmup: warm-up samples per worker after calibration (stored, flagged).
        min_time_s: calibration target, seconds per sample.
        placement: a placement policy or likwid-style CPU expression.
        threads_per_worker: CPUs (and BLAS threads) per worker.
        reserve_cpus: CPUs per node kept free for Ray's own processes.
        mode: "weak" (each worker does the full work) or "strong" (work split among workers).
        results: the dataset folder.
        scratch: folder on each node for workloads that write files (None: a temp folder).
        until_stable: after ``repetitions`` samples, keep adding synchronized batches until the
            bootstrap 95% CI half-width of the primary metric's median is within ``rel_ci``
            of the median, or ``max_time_s`` seconds of measuring have passed.
        max_time_s: with ``until_stable``, the measuring time limit per trial, seconds.
        rel_ci: with ``until_stable``, the CI half-width target as a fraction of the median.
        max_cv: coefficient of variation (a fraction) above which a metric is flagged unstable.
        resource_interval_s: seconds between two CPU%/RSS samples while measuring.
        targets: service-level targets "workload:metric OP value", checked on the medians.
    """

    workloads: tuple[str, ...] = DEFAULT_SUITE
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    workers: int = 1
    nodes: int = 1
    repetitions: int = 10
    warmup: int = 1
    min_time_s: float = 0.1
    placement: str = "compact"
    threads_per_worker: int = 1
    reserve_cpus: int = 0
    mode: str = "weak"
    results: Path = Path("results")
    scratch: str | None = None
    until_stable: bool = False
    max_time_s: float = 60.0
    rel_ci: float = 0.02
    max_cv: float = 0.05
    resource_interval_s: float = 0.2
    targets: tuple[str, ...] = ()

    def to_json(self) -> str:
        """Return the request as canonical JSON (stored in ``runs.spec``)."""
        data = asdict(self)
        data["results"] = str(self.results)
        return json.dumps(data, sort_keys=True, default=str)


def parse_param_options(options: list[str], workloads: tuple[str, ...]) -> dict[str, dict[str, str]]:
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


def build_request(
    workloads: tuple[str, ...],
    param_options: list[str],
    **settings: Any,
) -> RunRequest:
    """Return a validated ``RunRequest`` from CLI-style inputs.

    Raises:
        UserError: an unknown workload or parameter, a value out of range, or a setting
            outside its allowed range.
    """
    workloads = tuple(workloads) or DEFAULT_SUITE
    for name in workloads:
        get_workload(name)
    given = parse_param_options(param_options, workloads)
    params = {name: parse_params(get_workload(name), given.get(name, {})) for name in workloads}
    request = RunRequest(workloads=workloads, params=params, **settings)
    _check_settings(request)
    from orchestrator.targets import parse_targets  # checks workloads and metrics exist

    parse_targets(request.targets, workloads=request.workloads)
    return request


def _check_settings(r: RunRequest) -> None:
    checks = [
        (r.workers >= 1, f"--workers {r.workers} must be at least 1."),
        (r.nodes >= 1, f"--nodes {r.nodes} must be at least 1."),
        (r.repetitions >= 1, f"--repetitions {r.repetitions} must be at least 1."),
        (r.warmup >= 0, f"--warmup {r.warmup} must be 0 or more."),
        (r.min_time_s > 0, f"--min-time {r.min_time_s} must be more than 0 seconds."),
        (r.threads_per_worker >= 1, f"--threads-per-worker {r.threads_per_worker} must be at least 1."),
        (r.reserve_cpus >= 0, f"--reserve-cpus {r.reserve_cpus} must be 0 or more."),
        (r.mode in MODES, f"--mode {r.mode!r} must be one of: {', '.join(MODES)}."),
        (r.max_time_s > 0, f"--max-time {r.max_time_s} must be more than 0 seconds."),
        (0 < r.rel_ci < 1, f"--rel-ci {r.rel_ci} must be a fraction of the median between 0 and 1, e.g. 0.02."),
        (r.max_cv > 0, f"--max-cv {r.max_cv} must be a fraction above 0, e.g. 0.05 for 5%."),
        (r.resource_interval_s >= 0.01,
         f"--resource-interval {r.resource_interval_s} must be at least 0.01 seconds."),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
