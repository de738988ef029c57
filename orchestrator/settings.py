"""The settings of a measurement, stated and validated once: ``Sampling``, ``Mode``, ``Order``,
``CapacitySettings`` and the defaults every command shares (placement, suite, results folder).

``RunRequest`` and ``SweepSpec`` embed one ``Sampling``; it travels typed to the runner and,
through ``TrialSpec``, to each worker. A setting out of range raises ``SettingError``, which
names the field; the command line reports it under its option name (``--min-time``) and a
sweep file under its key (``min_time``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from cluster.placement_policy import COMPACT
from workloads.errors import UserError


class Mode(str, Enum):
    """How work is divided among N workers: weak (each does the full work) or strong (split)."""

    WEAK = "weak"
    STRONG = "strong"


class Order(str, Enum):
    """The order a sweep runs its trials in."""

    SEQUENTIAL = "sequential"
    INTERLEAVED = "interleaved"
    RANDOM = "random"


def choice(enum: type[Enum], text: Any, name: str) -> Any:
    """Return the member of ``enum`` whose value is ``text``; ``UserError`` names ``name`` and the choices."""
    try:
        return enum(text)
    except ValueError:
        values = ", ".join(m.value for m in enum)
        raise UserError(f"{name} {text!r} must be one of: {values}.") from None


class SettingError(UserError):
    """A ``Sampling`` field out of range; ``str()`` names it as the command line does."""

    def __init__(self, name: str, value: Any, rule: str) -> None:
        self.field_name, self.value, self.rule = name, value, rule
        super().__init__(f"{option_name(name)} {value} {rule}.")


def _names(option: str, key: str) -> dict[str, str]:
    return {"option": option, "key": key}


@dataclass(frozen=True, slots=True)
class Sampling:
    """How each trial is measured; every default lives here and nowhere else.

    Attributes:
        invocations: fresh sets of worker processes per trial (K); each sets up, calibrates,
            warms up and measures its own rounds, and the trial's figure is the median of the
            invocations' figures (analysis/invocations.py). K >= 3 for a CI that includes
            what a process start changes; 5 keeps single-run A/A comparisons quiet on the
            machines measured (README, Statistics).
        repetitions: measured rounds per invocation (each round: every worker takes one
            sample, all started together); a trial has invocations x repetitions rounds.
        warmup: warm-up rounds per invocation, after calibration (stored, flagged).
        min_time_s: calibration target, seconds per sample.
        until_stable: after ``repetitions`` rounds, each invocation adds rounds until its own
            median's CI is within ``rel_ci`` of it, or its share of ``max_time_s`` has passed.
        max_time_s: with ``until_stable``, the measuring time limit per trial, seconds (split
            evenly among its invocations).
        rel_ci: with ``until_stable``, the CI half-width target as a fraction of the median;
            also the precision the stored repetition plan aims at (``trials.plan_*``).
        max_cv: coefficient of variation (a fraction) above which a metric is flagged unstable.
        resource_interval_s: seconds between two CPU%/RSS samples while measuring.
        scratch: folder on each node for workloads that write files (None: a temp folder).
        lock_cpus: take a host-wide lock on every pinned CPU for each trial, so two runs never
            share a CPU; off (``--no-lock``), a trial whose CPUs another run holds is flagged
            ``shared_cpus``.
        lock_timeout_s: how long a trial waits for CPUs another run holds, seconds.
        trial_timeout_s: a trial still running after this many seconds (each invocation's
            start, setup, calibration and rounds) is failed with that reason and the run goes on; 0: no limit.
    """

    invocations: int = field(default=5, metadata=_names("--invocations", "invocations"))
    repetitions: int = field(default=3, metadata=_names("--repetitions", "repetitions"))
    warmup: int = field(default=1, metadata=_names("--warmup", "warmup"))
    min_time_s: float = field(default=0.1, metadata=_names("--min-time", "min_time"))
    until_stable: bool = field(default=False, metadata=_names("--until-stable", "until_stable"))
    max_time_s: float = field(default=60.0, metadata=_names("--max-time", "max_time"))
    rel_ci: float = field(default=0.02, metadata=_names("--rel-ci", "rel_ci"))
    max_cv: float = field(default=0.05, metadata=_names("--max-cv", "max_cv"))
    resource_interval_s: float = field(default=0.2, metadata=_names("--resource-interval", "resource_interval"))
    scratch: str | None = field(default=None, metadata=_names("--scratch", "scratch"))
    lock_cpus: bool = field(default=True, metadata=_names("--lock/--no-lock", "lock"))
    lock_timeout_s: float = field(default=300.0, metadata=_names("--lock-timeout", "lock_timeout"))
    trial_timeout_s: float = field(default=0.0, metadata=_names("--trial-timeout", "trial_timeout"))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", float) and not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise SettingError(f.name, value, "must be a finite number")
        checks = (
            ("invocations", self.invocations >= 1, "must be at least 1"),
            ("repetitions", self.repetitions >= 1, "must be at least 1"),
            ("warmup", self.warmup >= 0, "must be 0 or more"),
            ("min_time_s", self.min_time_s > 0, "must be more than 0 seconds"),
            ("max_time_s", self.max_time_s > 0, "must be more than 0 seconds"),
            ("rel_ci", 0 < self.rel_ci < 1, "must be a fraction of the median between 0 and 1, e.g. 0.02"),
            ("max_cv", self.max_cv > 0, "must be a fraction above 0, e.g. 0.05 for 5%"),
            ("resource_interval_s", self.resource_interval_s >= 0.01, "must be at least 0.01 seconds"),
            ("lock_timeout_s", self.lock_timeout_s >= 0, "must be 0 seconds or more"),
            ("trial_timeout_s", self.trial_timeout_s >= 0, "must be 0 (no limit) or more seconds"),
        )
        for name, ok, rule in checks:
            if not ok:
                raise SettingError(name, getattr(self, name), rule)


DEFAULT_PLACEMENT = COMPACT
"""Placement when none is given: fill one L3 domain, physical cores before SMT siblings."""

DEFAULT_SUITE = ("cpu.sqrt_mod", "memory.stream", "cache.lru")
"""Workloads ``topobench run`` measures when none is named."""

RESULTS_DIR = Path("results")
"""The results dataset folder when ``--results`` is not given."""


@dataclass(frozen=True, slots=True)
class CapacitySettings:
    """The defaults of a capacity search (``topobench capacity`` and a sweep's ``[capacity]``).

    Attributes:
        resolution: stop bisecting when the bracket is this narrow, as written ("5%").
        start_rate_per_s: the first offered rate in total; 0 starts at a quarter of the
            closed-loop throughput.
        repetitions: rounds per step (an upper bound needs 6; with 10 one disturbed round
            does not fail a step).
        warmup: warm-up rounds per step.
    """

    resolution: str = "5%"
    start_rate_per_s: float = 0.0
    repetitions: int = 10
    warmup: int = 1
    invocations: int = 1


CAPACITY = CapacitySettings()

COMPARE_HISTORY = 10
"""Earlier runs of BASE's code and machine that ``compare --prior auto`` takes at most (newest first)."""


@dataclass(frozen=True, slots=True)
class HistorySettings:
    """How ``topobench history`` finds, confirms and gates changes over a series' points.

    Attributes:
        detect_alpha: level of the detector's scan-corrected p-value per change point
            (``analysis.changepoints``): candidates only; confirmation decides.
        min_size: fewest points on each side of a change (the detector's ``min_size``).
        fdr: Benjamini-Hochberg level over every candidate of every series scanned together:
            the expected share of false changes among those confirmed.
        confidence: level of every interval history states (a point's, a change's ratio).
        confirm_points: at most this many points on each side of a change are confirmed on
            their raw samples (the nearest ones), so a long history costs no more to confirm.
        seed: seed of every bootstrap (results are reproducible).
    """

    detect_alpha: float = 0.01
    min_size: int = 5
    fdr: float = 0.05
    confidence: float = 0.95
    confirm_points: int = 30
    seed: int = 0


HISTORY = HistorySettings()


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long the driver waits for each kind of Ray result before it says what did not come, seconds.

    A trial's ``--trial-timeout`` (when given) bounds its phases too, and replaces ``prepare_s``.

    Attributes:
        probe_s: every node's topology and environment.
        actor_start_s: an invocation's fresh worker actors, or the run's node agents, to start.
        service_s: a workload's shared server to start.
        lock_s: one round of lock calls (waiting for another run's CPUs is ``--lock-timeout``).
        prepare_s: setup and calibration (numba compiles there; a ``command`` may build).
        round_floor_s: a batch of rounds' deadline: this, plus its windows, plus ``round_factor``
            times the longest sample seen so far (before the first, the calibrated estimate).
        round_factor: see ``round_floor_s``.
        finish_s: teardown and the resource rows.
        clock_s: one measurement of every node's clock offset.
        call_s: any other call (unlocking, stopping a server).
    """

    probe_s: float = 120.0
    actor_start_s: float = 60.0
    service_s: float = 60.0
    lock_s: float = 30.0
    prepare_s: float = 1800.0
    round_floor_s: float = 60.0
    round_factor: float = 10.0
    finish_s: float = 120.0
    clock_s: float = 30.0
    call_s: float = 60.0


DEADLINES = Deadlines()


@dataclass(frozen=True, slots=True)
class Clocks:
    """How node clocks are measured: once per run, every node in parallel, then re-checked.

    Attributes:
        exchanges: request/response exchanges per node per measurement (the smallest round
            trip is kept: Cristian 1989, NTP's minimum-delay filter).
        recheck_s: before a trial, offsets older than this are measured again; a node whose
            offset moved beyond both estimates' uncertainty is named (drift).
    """

    exchanges: int = 16
    recheck_s: float = 300.0


CLOCKS = Clocks()


@dataclass(frozen=True, slots=True)
class StartMargin:
    """How far ahead of a batch of rounds' first instant the driver sends it, sized from measurements.

    The margin is ``floor_ns`` plus ``factor`` times the longest time the last batches took to
    reach their last worker (the submission and the delivery; ``pipeline.margin``); a batch
    whose call arrived late raises it for the next.

    Attributes:
        floor_ns: the smallest margin (one actor call's latency, ~1 ms, with room).
        factor: safety factor over the measured time to reach the last worker.
        ceiling_ns: the largest margin (a stall must not push rounds seconds apart).
    """

    floor_ns: int = 2_000_000
    factor: float = 2.0
    ceiling_ns: int = 1_000_000_000


START_MARGIN = StartMargin()


@dataclass(frozen=True, slots=True)
class RoundWindow:
    """How far apart a batch's rounds start: round k at the batch's first instant plus k windows.

    One call per node runs a whole batch of rounds (``pipeline.rounds``), so a round's start
    cannot wait for the round before it to end everywhere; instead every round has its
    window, ``factor`` times the longest sample expected plus ``guard_ns``. A round whose
    sample started late (its call, or the worker's previous sample, still busy at the
    instant) missed its window: it is kept, not
    measured (flag ``window_missed``), and re-run in a batch with twice the window, up to
    ``retries`` batches in a row (SKaMPI, Worsch, Reussner and Augustin 2002; ReproMPI, Hunold and
    Carpen-Amarie 2016).

    Attributes:
        factor: window over the longest sample expected (calibration's, then the longest seen).
        guard_ns: room after a sample for its row to go back and the next call to begin.
        retries: batches in a row that may miss rounds and re-run them before the rest is given up.
        most_rounds: most rounds in one batch (a node's agent sends all of a batch's calls at once).
    """

    factor: float = 1.25
    guard_ns: int = 5_000_000
    retries: int = 3
    most_rounds: int = 64

    def ns(self, longest_s: float) -> int:
        """Return the window for samples of at most ``longest_s`` seconds."""
        return int(self.factor * longest_s * 1e9) + self.guard_ns


ROUND_WINDOW = RoundWindow()

LOCAL_LEAD = StartMargin(floor_ns=2_000_000, factor=2.0, ceiling_ns=50_000_000)
"""The lead of each round of a trial on one node, whose agent is the barrier: twice the longest time its
last rounds' calls took to reach its workers, 2 to 50 ms (``NodeAgent.rounds``)."""

MAX_TRIALS = 10_000
"""Largest sweep matrix run unless ``--max-trials`` raises the limit."""

SAMPLING_FIELDS = {f.name: f for f in fields(Sampling)}
DEFAULTS = Sampling()


def option_name(field_name: str) -> str:
    """Return the command-line option of a ``Sampling`` field (``min_time_s`` → ``--min-time``)."""
    return SAMPLING_FIELDS[field_name].metadata["option"]


def key_name(field_name: str) -> str:
    """Return the sweep-file key of a ``Sampling`` field (``min_time_s`` → ``min_time``)."""
    return SAMPLING_FIELDS[field_name].metadata["key"]
