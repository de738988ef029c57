"""The workload protocol: typed parameters, metrics with units, and setup/run/teardown.

A harness (``workloads/harness.py``) times ``run(n)``; the workload does ``n`` iterations of
its operation and reports how many operations it did. The primary metric is that count
divided by the elapsed time, in the unit ``throughput.unit``. Workloads that measure more
than one thing (STREAM's four kernels, a hit rate) return extra per-sample values in
``Measurement.metrics``, each declared in ``metrics`` with its unit. Workloads that time
requests return every request's latency as a histogram per declared ``latencies`` metric;
the orchestrator derives the percentiles (``latency_metrics``) from the merged histograms.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from workloads.histogram import LATENCY_PERCENTILES, LatencyHistogram
from workloads.params import Param, parse_params

Better = Literal["higher", "lower"] | None
"""Which way a metric improves: "higher" (throughput), "lower" (latency), None (descriptive:
a size, a fraction, a count that is neither good nor bad; compared without a verdict)."""


@dataclass(frozen=True, slots=True)
class Metric:
    """A reported quantity: name (as stored in ``samples.metric``), unit, and which way is better."""

    name: str
    unit: str
    description: str = ""
    better: Better = "higher"

    @property
    def higher_is_better(self) -> bool | None:
        """Return True (higher is better), False (lower is), None (descriptive: no verdict)."""
        return None if self.better is None else self.better == "higher"


def latency_metrics(latency: Metric) -> tuple[Metric, ...]:
    """Return the metrics derived from one latency histogram: percentiles, mean and max.

    ``latency`` names the distribution and its display unit ("ms"); the derived names are
    ``<name>_p50_<unit>`` … ``<name>_p999_<unit>``, ``<name>_mean_<unit>``, ``<name>_max_<unit>``.
    """
    what = latency.description or latency.name
    out = [Metric(f"{latency.name}_{label}_{latency.unit}", latency.unit,
                  f"{q:g}th percentile of {what}", latency.better) for label, q in LATENCY_PERCENTILES]
    out.append(Metric(f"{latency.name}_mean_{latency.unit}", latency.unit, f"mean of {what}", latency.better))
    out.append(Metric(f"{latency.name}_max_{latency.unit}", latency.unit, f"largest {what}", latency.better))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Measurement:
    """What one ``run(n)`` did: ``ops`` operations plus optional extra metric values.

    ``metrics`` maps a declared metric name to its value for this sample, already in
    that metric's unit (e.g. ``{"triad_gbs": 21.3}``). ``histograms`` maps a declared
    ``latencies`` metric name to the histogram of every request of the sample (ns).
    ``flags`` names conditions of this sample that make its trial's figures suspect, each
    declared in the workload's ``sample_flags`` (e.g. "cache_resident"); they join the trial's flags.
    ``finish``, when given, summarizes the sample after the clock stopped (histograms from raw
    latencies cost ~0.5 ms each, 1-2% of a 0.1 s sample): ``time_run`` calls it and keeps the
    Measurement it returns.
    """

    ops: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    histograms: Mapping[str, LatencyHistogram] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    finish: Callable[[], Measurement] | None = None

    def finished(self) -> Measurement:
        """Return the summarized measurement (``finish()``'s), or this one when there is nothing to finish."""
        return self.finish() if self.finish is not None else self


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What a workload may know about where it runs.

    Attributes:
        worker_rank: 0-based rank of this worker in the trial.
        workers: number of workers in the trial (all nodes).
        cpus: the CPUs this worker is pinned to (empty when unpinned).
        scratch_dir: a folder on this node the workload may write into, or None for a
            temporary folder of its own.
        cache_sizes_bytes: cache sizes seen by this worker, keys "L1d", "L2", "L3" (of its
            first CPU) and "L3_total" (every L3 its CPUs touch); missing keys when unknown.
        work_share: share of the total work this worker does: 1.0 for weak scaling,
            1/workers for strong scaling.
        node_ip: this node's IP address.
        threads: BLAS/OpenMP threads this worker may use (``--threads-per-worker``); 0 when
            not run by a worker (then a workload may use its CPUs or affinity).
        service_endpoint: where the trial's shared ``Service`` listens ({"host", "port"}),
            when the workload's server runs on another node; None otherwise.
    """

    worker_rank: int = 0
    workers: int = 1
    cpus: tuple[int, ...] = ()
    scratch_dir: Path | None = None
    cache_sizes_bytes: Mapping[str, int] = field(default_factory=dict)
    work_share: float = 1.0
    node_ip: str = "127.0.0.1"
    threads: int = 0
    service_endpoint: Mapping[str, Any] | None = None


class Service(ABC):
    """A server that a trial runs once, on one node, for every worker to load (e.g. HTTP).

    The runner starts it before the workers' ``setup`` and stops it after their teardown;
    each worker finds its endpoint in ``WorkerContext.service_endpoint``.
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)

    @abstractmethod
    def start(self, host: str) -> dict[str, Any]:
        """Listen on ``host`` (the node's IP); return the endpoint, e.g. {"host": ip, "port": 8080}."""

    @abstractmethod
    def stop(self) -> None:
        """Stop serving and release sockets and threads."""


class Workload(ABC):
    """Base class of every workload. Subclasses set the class attributes and three methods.

    Class attributes:
        name: dotted registry name, "family.kind" (e.g. "memory.stream").
        summary: one line saying what is measured.
        source: the method's source (a paper, a standard benchmark, a man page).
        op: what one counted operation is, in words ("one sqrt and one mod of a float64").
        throughput: the primary metric, operations per second in an honest unit.
        metrics: extra metrics a ``Measurement`` may carry.
        latencies: latency distributions a ``Measurement`` carries as histograms (unit: the
            display unit of the derived percentiles, e.g. "ms").
        params: the typed parameters; ``self.params`` holds validated values.
        sample_flags: flags a ``Measurement`` may raise, each with the sentence that explains
            it in the run's notes (e.g. {"cache_resident": "arrays fit in the L3: ..."}).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    source: ClassVar[str]
    op: ClassVar[str]
    throughput: ClassVar[Metric]
    metrics: ClassVar[tuple[Metric, ...]] = ()
    latencies: ClassVar[tuple[Metric, ...]] = ()
    params: ClassVar[tuple[Param, ...]] = ()
    sample_flags: ClassVar[Mapping[str, str]] = {}
    service: ClassVar[type[Service] | None] = None

    @classmethod
    def service_node(cls, params: Mapping[str, Any]) -> str:
        """Return where the shared ``service`` runs ("head", a hostname, an IP); "" for none.

        With "" (the default) a workload that has a server runs it inside each worker.
        """
        return ""

    @classmethod
    def extra_metrics(cls, params: Mapping[str, Any]) -> tuple[Metric, ...]:
        """Return the extra metrics of a trial with ``params`` (default: ``metrics``).

        Override when a metric's unit or direction depends on the parameters (``command``'s
        scraped ``extracted`` value is better higher or lower as its ``direction`` says).
        """
        return cls.metrics

    @classmethod
    def min_cpus(cls, params: Mapping[str, Any]) -> int:
        """Return the fewest CPUs one worker needs (``--threads-per-worker``); the plan is refused below it."""
        return 1

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params: dict[str, Any] = parse_params(type(self), dict(params or {}))

    @classmethod
    def validate(cls, params: Mapping[str, Any]) -> None:
        """Check cross-parameter rules before any work; raise ``UserError`` when broken.

        Single-parameter types and ranges are checked by ``parse_params``; override this
        for rules that need the environment (a command that must exist, a writable folder).
        """

    def setup(self, ctx: WorkerContext) -> None:
        """Prepare buffers, files, servers; not timed."""

    @abstractmethod
    def run(self, n: int) -> Measurement:
        """Do ``n`` iterations of the operation and say how many operations were done."""

    def teardown(self) -> None:
        """Release everything ``setup`` made (files, sockets, threads); not timed."""

    @classmethod
    def code_version(cls) -> str:
        """Return 12 hex digits of a SHA-256 of the class's source (its code version in a history).

        The class body only: what the workload does. Without source (a frozen or compiled
        module), the hash of its module, name and package version stands in.
        """
        import hashlib
        import inspect

        try:
            text = inspect.getsource(cls)
        except (OSError, TypeError):
            from importlib.metadata import PackageNotFoundError, version

            package = cls.__module__.partition(".")[0]
            try:
                text = f"{cls.__module__}.{cls.__qualname__} {version(package)}"
            except PackageNotFoundError:
                text = f"{cls.__module__}.{cls.__qualname__}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @classmethod
    def all_metrics(cls) -> tuple[Metric, ...]:
        """Return the primary metric, the extra ones, then those derived from each latency."""
        return (cls.throughput, *cls.metrics, *(m for lat in cls.latencies for m in latency_metrics(lat)))
