"""The plain records every layer shares: what to measure (``Point`` on a ``Shape``), the planned
``Trial`` with its ``WorkerSlot``s, and what a run produced (``RunOutcome``, ``Session``).

The planner makes them, the pipeline runs them, analysis, the store and render read them;
this module imports none of those layers at run time, so each can import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cluster.clock import SAME_CLOCK, ClockOffset
from cluster.placement_policy import Placement
from orchestrator.settings import DEFAULT_PLACEMENT, Mode, Sampling

if TYPE_CHECKING:  # annotations only: these layers import this module
    import pyarrow as pa

    from cluster.nodes import NodeInfo
    from orchestrator.analysis.stopping import Look
    from orchestrator.analysis.targets import TargetResult


@dataclass(frozen=True, slots=True)
class Shape:
    """How a trial's workers are laid out, shared by ``run`` and every sweep point.

    Attributes:
        workers: workers per node.
        nodes: how many of the cluster's nodes to use (stable order, head last).
        placement: a parsed placement policy or CPU expression.
        threads_per_worker: CPUs (and BLAS/numba threads) per worker.
        reserve_cpus: CPUs per node kept free for Ray's own processes.
        mode: weak (each worker does the full work) or strong (the work is split).
    """

    workers: int = 1
    nodes: int = 1
    placement: Placement = DEFAULT_PLACEMENT
    threads_per_worker: int = 1
    reserve_cpus: int = 0
    mode: Mode = Mode.WEAK


DEFAULT_SHAPE = Shape()
"""The worker shape when none is given: one worker of one CPU on one node, compact, weak scaling."""


@dataclass(frozen=True, slots=True)
class Point:
    """One point to measure: a workload with a full parameter set, on a worker shape."""

    workload: str
    params: Mapping[str, Any]
    shape: Shape
    label: str = ""
    """Tells apart points that are otherwise equal (a search's repeated steps); part of the trial id."""
    sampling: Sampling | None = None
    """How to measure this point, when not as the run's ``Sampling`` says (a longer search step)."""


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """One worker of a trial: its rank, node and CPUs (all the node's usable CPUs when unpinned)."""

    rank: int
    node_id: str
    cpus: tuple[int, ...]
    pinned: bool


@dataclass(frozen=True, slots=True)
class Trial:
    """One measured point: a workload with parameters on a set of worker slots."""

    trial_id: str
    workload: str
    params: Mapping[str, Any]
    shape: Shape
    slots: tuple[WorkerSlot, ...]
    service_node_id: str | None = None  # node of the workload's shared server, if any
    hosts: int = 1
    """How many machines the trial's nodes run on (nodes of one host share its CPUs)."""
    sampling: Sampling | None = None
    """This trial's own sampling (a search step's), else None: the run's."""

    @property
    def node_ids(self) -> tuple[str, ...]:
        """Return the distinct node ids taking part, in slot order."""
        return tuple(dict.fromkeys(s.node_id for s in self.slots))


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """What one worker of a trial returned: where it ran, its wide samples and resource rows."""

    rank: int
    node_id: str
    hostname: str
    cpus: tuple[int, ...]
    """The CPUs the worker read back from the OS (its whole node's usable set when unpinned)."""
    pinned: bool
    samples: pa.Table
    """Wide: one row per sample (warm-ups flagged), timing columns and ``metric:<name>`` columns."""
    resources: pa.Table
    """``cluster.resource_monitor.RESOURCE_COLUMNS`` rows sampled while it measured."""
    setup_s: float = 0.0
    """Seconds the workload's setup took on this worker (numba kernels compile there)."""
    cpu_means: Mapping[int, float] = field(default_factory=dict)
    """Each node CPU's busy share (0-100) over the measured samples; from the node's recording worker."""
    clock: ClockOffset = SAME_CLOCK
    """Its node's clock minus the driver's: its start/end stamps are in the node's time."""


@dataclass(frozen=True, slots=True)
class NodeResult:
    """One node's part of a trial, built on the node by its agent (``pipeline.record.node_record``)."""

    node_id: str
    samples: pa.Table
    """Long ``samples`` rows of its workers (``SAMPLES_SCHEMA``), stamps on the driver's clock."""
    resources: pa.Table
    """Long ``resources`` rows of its workers (``RESOURCES_SCHEMA``)."""
    latency: pa.Table | None
    """Per measured round, its workers' latency histograms merged (repetition, warmup, hist:<name>); None
    for a workload without latencies."""
    metrics: tuple[str, ...]
    """The names of the metrics its samples reported (``metric:<name>`` columns)."""
    flags: frozenset[str]
    """Sample flags the workload raised in any measured sample."""
    peaks: Mapping[int, float | None]
    """Per worker rank, its peak RSS (bytes)."""
    cpu_means: Mapping[int, float]
    """Each CPU's busy share (0-100) over the measured samples."""
    setup_s: float
    """The longest setup of its workers, seconds."""
    clock: ClockOffset = SAME_CLOCK
    """Its clock minus the driver's."""
    parts: tuple[Any, ...] = ()
    """The ``store.layout.FileEntry`` of its ``samples`` and ``resources`` parts, when its agent wrote them to
    the results itself (``node_agent.NodeAgent.finish``); empty: the driver writes them."""
    unwritten: str | None = None
    """Why its agent could not write its parts (the driver wrote them), in one sentence; None: no such failure."""


@dataclass(frozen=True, slots=True)
class MeasuredTrial:
    """One invocation of a trial whose workers all finished: their results (per worker, or per node from the
    agents) and how measuring stopped."""

    trial: Trial
    workers: tuple[WorkerResult, ...]
    """Each worker's raw results, in slot order; empty when the agents built ``nodes``."""
    stop_reason: str
    """repetitions (fixed count) | stable (CI narrow enough) | max-time."""
    measure_s: float
    """Seconds from the first shared start to the last sample's end (driver clock)."""
    stop: Look | None = None
    """With --until-stable, the last look: its interval is the primary metric's CI (one invocation)."""
    flags: frozenset[str] = frozenset()
    """Trial flags raised while running it (``shared_cpus``)."""
    nodes: tuple[NodeResult, ...] = ()
    """Each node's rows and figures as its agent built them, in node order (empty: build them from ``workers``)."""
    invocation: int = 0
    """Which invocation of the trial this is (0-based): a fresh set of worker processes."""
    overhead_s: float = 0.0
    """Seconds besides its measured rounds: workers started, CPUs locked, setup, calibration, warm-up, teardown."""
    iterations: int = 0
    """Iterations per sample, the same in every invocation of the trial (the first one calibrates it)."""
    missed_rounds: tuple[int, ...] = ()
    """Repetition numbers of rounds that missed their window (kept, not measured, re-run; ``pipeline.rounds``)."""


@dataclass(frozen=True, slots=True)
class PhaseCost:
    """What one phase of a trial cost the driver."""

    wall_s: float
    cpu_s: float
    """The driver process's CPU seconds (all its threads, Ray's included)."""
    thread_s: float
    """The driver's own thread's CPU seconds (Ray's threads in it excluded)."""
    calls: int
    """Ray calls whose results the driver waited for."""


@dataclass(frozen=True, slots=True)
class TrialCosts:
    """What a trial (all its invocations) cost the driver, by phase, and how its rounds' start instants were reached."""

    phases: Mapping[str, PhaseCost] = field(default_factory=dict)
    margin_ns: tuple[int, ...] = ()
    """Per round, how far ahead of its start instant the driver sent its batch (the margin, plus k windows)."""
    slack_ns: tuple[int, ...] = ()
    """Per round, the least time by which any worker began its call before the instant (negative: late): the
    batch's arrival for its first round, the previous sample's end for the others."""
    late_ns: tuple[int, ...] = ()
    """Per round, how long after the instant its last worker started, on that worker's own clock."""


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """Everything stored for one trial: per-node tables and its ``trials`` rows."""

    trial: Trial
    tables: Mapping[str, Mapping[str, pa.Table]]
    """{"samples": {node_id: table}, "resources": {node_id: table}}; empty when the trial failed."""
    rows: tuple[dict[str, Any], ...]
    workers: tuple[dict[str, Any], ...] = ()
    """``workers`` rows: each worker's own figures per metric."""
    latency: tuple[dict[str, Any], ...] = ()
    """``latency`` rows: each latency distribution's merged histogram."""
    clocks: Mapping[str, ClockOffset] = field(default_factory=dict)
    """Each node's clock offset to the driver, as this trial estimated it."""
    error: str | None = None
    costs: TrialCosts = TrialCosts()
    """What the trial cost the driver (``pipeline.costs``); not stored."""
    parts: tuple[Any, ...] = ()
    """Parts of ``samples`` and ``resources`` the nodes' agents wrote themselves (``NodeResult.parts``),
    committed with the trial; the nodes they hold are absent from ``tables``."""


OnTrial = Callable[[int, Trial, "TrialRecord | None"], None]
"""Progress callback: (index, trial, None) before a trial, (index, trial, record) after it."""


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """The end of a run: its id, status and every trial's record run this time."""

    run_id: str
    status: str
    """complete | failed (a trial failed, or the folder could not be written) | interrupted."""
    records: tuple[TrialRecord, ...]

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Return every ``trials`` row of the trials run this time."""
        return [r for record in self.records for r in record.rows]


@dataclass(frozen=True, slots=True)
class Session:
    """A finished session: the outcome, every trials row of the run, and the targets' outcomes."""

    results: Path | str
    """Where the run is stored: the folder, or the URI without credentials (object storage)."""
    outcome: RunOutcome
    trials: tuple[Trial, ...]
    """The trials of the run (a search's: those it ran)."""
    nodes: tuple[NodeInfo, ...]
    rows: tuple[dict[str, Any], ...]
    """Every trials row of the run: the kept rows of a resumed run, then this session's."""
    targets: tuple[TargetResult, ...]
    resumed: int = 0
    """How many trials a resumed run kept instead of running."""

    @property
    def run_id(self) -> str:
        """Return the run's id."""
        return self.outcome.run_id

    @property
    def status(self) -> str:
        """Return the run's status: complete, failed or interrupted."""
        return self.outcome.status

    @property
    def targets_missed(self) -> int:
        """Return how many target checks failed."""
        return sum(1 for t in self.targets if not t.passed)


COMPARE_KEY = ("workload", "params", "nodes", "workers", "placement", "threads_per_worker", "mode")
"""The trials columns that make two runs' trials the same configuration."""


@dataclass(frozen=True, slots=True)
class MetricRounds:
    """One metric of one trial configuration in one run: its unit, direction and rounds by invocation."""

    unit: str
    higher_is_better: bool | None
    invocations: tuple[tuple[float, ...], ...]
    """Per invocation (in order), per round the mean over the trial's workers (rounds every
    worker measured); a dataset written before invocations reads as one."""
    flags: tuple[str, ...] = ()
    """The trial's flags on this metric (unstable, noisy, desynchronized, ...), sorted."""

    @property
    def units(self) -> tuple[float, ...]:
        """Return every round's unit, invocations one after another."""
        return tuple(v for inv in self.invocations for v in inv)


@dataclass(frozen=True, slots=True)
class RunRounds:
    """One run as ``compare`` reads it: its progress, labels and rounds per configuration and metric."""

    run_id: str
    status: str | None
    """complete | running | failed | interrupted; None when the run row is missing."""
    trials_stored: int
    trials_total: int | None
    metrics: Mapping[tuple, MetricRounds]
    """Keyed by the ``COMPARE_KEY`` values, then the metric name."""
    commit: str | None = None
    """The benchmarked code's commit (``runs.git_commit``), None when unknown."""
    label: str | None = None
    """The run's ``--label``, None without one."""
    host: str | None = None
    """The machine it ran on (hostname and CPU model of its head node), to keep a prior on one machine."""
    started_at: object = None
    """When it started (a datetime), for ordering a history."""


@dataclass(frozen=True, slots=True)
class CapacityResult:
    """A finished capacity search: its session, the ``capacity`` rows and what a load needs."""

    session: Session
    rows: tuple[dict[str, Any], ...]
    """One ``capacity`` row per N."""
    answer: dict[str, Any] | None
    """How many N the load needs (``analysis.capacity.nodes_needed``); None without a load or a capacity."""
    load_per_s: float | None
    dimension: str
    """workers or nodes: what N counts."""
    unit: str
    """The workload's throughput unit (requests/s, ...)."""

    @property
    def met(self) -> bool:
        """Return whether some N met the SLO."""
        return any(r["capacity_per_s"] for r in self.rows)
