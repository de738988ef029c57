"""Capacity at a latency SLO: judging one open-loop step, searching rates, and the nodes a load needs.

A step offers a fixed rate from the intended schedule (latency counted from each request's
intended send time: wrk2; open versus closed load: Schroeder et al., NSDI 2006). It passes
when latency does not grow over the step (no backlog: under 1% per second of schedule), the generator kept
its schedule, and every SLO percentile's upper 95% confidence bound (over rounds) meets the
SLO. The search ramps geometrically (x2) to the first failing step (or, from a failing start,
halves down to the first pass), then bisects between the last pass and the first fail to
``resolution``. That assumes pass/fail is monotone in the rate; an answer far below the
closed-loop throughput is checked by probing above it, and failing steps below a passing one
are reported (``non_monotone``). Capacity(N) over worker or node counts is fitted with the USL
(Gunther 1993; Amdahl with three points), which answers how many N a load needs
(``nodes_needed``; what one more N adds: ``capacity_advice``).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workloads.errors import UserError

BACKLOG_LIMIT = 1 / 0.99 - 1
"""A step has a backlog when latency from the intended send time grows faster than this per second
of schedule (median over rounds): the system serves under 99% of the offered rate. The slope
(``workloads.open_loop``), not completions per wall second, so a short sample's drain of its last
requests does not read as a shortfall."""

MIN_ROUNDS = 6
"""Rounds per step: the fewest from which an upper confidence bound of a percentile exists."""

GENERATOR_SHARE = 0.25
"""A step's generator fell behind when its send-lag p99 exceeds this share of the SLO's threshold: then
the client, not the system measured, spends the latency budget (and bunches the arrivals)."""

RAMP_FACTOR = 2.0

DESCENTS = 4
"""When the first step fails, halve the rate up to this many times (to 1/16 of the start) before
saying the SLO is not met even at the lowest rate."""

FAR_BELOW = 8
"""An answer under 1/FAR_BELOW of the closed-loop throughput (or none at all) is checked by probing
above it before it is trusted: a low-rate step can fail on noise alone (few requests per round
make a percentile's upper bound wide; timer and scheduler wake-ups make the send lag)."""

PROBE_FACTOR = 4.0
"""Probes above a doubtful answer step up by this factor, ending at half the closed-loop throughput."""

_PERCENTILES = {"p50": "p50", "p90": "p90", "p99": "p99", "p99.9": "p999", "p999": "p999"}
_UNITS_NS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}
_SLO = re.compile(r"^\s*(p50|p90|p99\.9|p999|p99)\s*(<=|<)\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*(ns|us|µs|ms|s)\s*$")


@dataclass(frozen=True, slots=True)
class Slo:
    """One latency objective: a percentile of every request's latency below a threshold."""

    percentile: str
    """Metric suffix of the percentile: p50, p90, p99 or p999 (p99.9)."""
    op: str
    """< or <=."""
    threshold_ns: float
    text: str

    def __str__(self) -> str:
        return self.text

    def holds(self, value_ns: float) -> bool:
        """Return whether a latency (ns) meets the objective."""
        return {"<": operator.lt, "<=": operator.le}[self.op](value_ns, self.threshold_ns)


def parse_slos(text: str, option: str = "--slo") -> tuple[Slo, ...]:
    """Parse ``--slo "p99<=5ms"`` (several joined with ","): p50|p90|p99|p99.9, < or <=, ns|us|ms|s.

    ``option`` names the input in messages (the flag, or the sweep file's key).

    Raises:
        UserError: a part is malformed, its threshold is not a positive finite number, or a
            percentile is bounded twice (which bound is meant would be a guess).
    """
    slos = []
    for part in text.split(","):
        match = _SLO.match(part)
        if not match:
            raise UserError(f"{option} {part.strip()!r} is not PERCENTILE OP NUMBER UNIT; write it like \"p99<=5ms\" "
                            "(percentiles p50, p90, p99, p99.9; < or <=; units ns, us, ms, s; several joined by ',').")
        value = float(match[3]) * _UNITS_NS[match[4]]
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"{option} {part.strip()!r}: the threshold must be a positive number of {match[4]}.")
        slo = Slo(_PERCENTILES[match[1]], match[2], value, part.strip())
        twice = next((s for s in slos if s.percentile == slo.percentile), None)
        if twice:
            raise UserError(f"{option} {text.strip()!r} bounds {match[1]} twice ({twice}, {slo}); give each "
                            f"percentile one bound, e.g. the tighter one alone.")
        slos.append(slo)
    return tuple(slos)


def parse_load(text: str, option: str = "--load") -> float:
    """Parse ``--load 20000/s`` (or a plain number) into requests per second; ``option`` names the input.

    Raises:
        UserError: not a positive finite rate.
    """
    raw = text.strip().removesuffix("/s").strip()
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isnan(value):
        raise UserError(f"{option} {text!r} is not a rate; give requests per second such as 20000/s.")
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"{option} {text!r} is out of range; give a finite rate above 0 requests per second, "
                        "such as 20000/s.")
    return value


@dataclass(frozen=True, slots=True)
class StepVerdict:
    """How one offered rate did."""

    offered_per_s: float
    achieved_per_s: float | None
    passed: bool
    judged: bool
    """False when the step was too short to judge a percentile (it is run again, longer)."""
    reason: str
    latency_ns: dict[str, tuple[float | None, float | None]]
    """Per SLO percentile: (figure, upper 95% bound) in ns."""
    disturbed: tuple[str, ...] = ()
    """The step's flags that say something besides the offered rate moved its figures (``DISTURBED``)."""


DISTURBED = ("noisy", "shared_cpus", "desynchronized", "unstable")
"""Trial flags that make a step's verdict say little about the rate offered (other load, shared CPUs,
workers apart, rounds varying over --max-cv)."""


def judge_step(rows: Sequence[Mapping[str, Any]], slos: Sequence[Slo], offered_per_s: float) -> StepVerdict:
    """Judge one step from its ``trials`` rows (see the module docstring).

    A failed trial fails the step. A percentile with no upper bound (fewer than 6 rounds, or
    too few requests for it) leaves the step unjudged.
    """
    by_metric = {r["metric"]: r for r in rows}
    primary = next((r for r in rows if r.get("aggregate_throughput") is not None), None)
    if primary is None or any(r["status"] != "ok" for r in rows):
        error = next((r.get("error") for r in rows if r.get("error")), "no throughput")
        return StepVerdict(offered_per_s, None, False, True, f"the step failed: {error}", {})
    achieved = primary.get("aggregate_median") or primary["aggregate_throughput"]
    latency: dict[str, tuple[float | None, float | None]] = {}
    problems = []
    for slo in slos:
        row = by_metric.get(f"latency_{slo.percentile}_ms")
        value = row and row["median"]
        high = row and row["ci_high"]
        latency[slo.percentile] = (value and value * 1e6, high and high * 1e6)
        if high is None:
            return StepVerdict(offered_per_s, achieved, False, False,
                               f"too short to bound {slo.percentile} (needs 6 rounds and enough requests)", latency)
        if not slo.holds(high * 1e6):
            problems.append(f"{slo.percentile} upper bound {high:.3g} ms misses {slo}")
    growth = by_metric.get("backlog_growth")
    if growth and growth["median"] is not None and growth["median"] > BACKLOG_LIMIT:
        problems.insert(0, f"a backlog: latency grew {growth['median'] * 1e3:.3g} ms per s of schedule, so about "
                           f"{offered_per_s / (1 + growth['median']):.4g}/s of the {offered_per_s:.4g}/s offered "
                           "were served")
    lag = by_metric.get("send_lag_p99_ms")
    tightest = min(slos, key=lambda s: s.threshold_ns)
    if lag and lag["median"] is not None and lag["median"] * 1e6 > GENERATOR_SHARE * tightest.threshold_ns:
        problems.append(f"the generator fell behind (send-lag p99 {lag['median']:.3g} ms, over "
                        f"{GENERATOR_SHARE:.0%} of {tightest}'s {tightest.threshold_ns / 1e6:.3g} ms)")
    flags = {f for r in rows for f in r.get("flags") or ()}
    return StepVerdict(offered_per_s, achieved, not problems, True, "; ".join(problems) or "meets the SLO", latency,
                       tuple(f for f in DISTURBED if f in flags))


@dataclass
class RateSearch:
    """The ramp-then-bisect search of one point: the next rate to offer, and when it is done.

    Rates are totals over all the point's workers, per second. The search assumes pass/fail is
    monotone in the offered rate, and checks it: when the bracket closes far below the
    closed-loop ``reference_per_s`` (under 1/``FAR_BELOW`` of it, or with no pass at all), it
    probes above before answering (``probe_rates``); a probe that passes shows a failing step
    below a passing one (``non_monotone``), and the search goes on above the highest pass.
    """

    start_per_s: float
    resolution: float
    reference_per_s: float | None = None
    """The closed-loop throughput the answer is checked against; None: unchecked."""
    steps: list[StepVerdict] = field(default_factory=list)
    probes: list[float] = field(default_factory=list)
    """The rates offered to check monotonicity, in order."""
    _planned: list[float] | None = field(default=None, init=False, repr=False)
    """Probe rates still to offer; None until the bracket first closes."""

    @property
    def passed_per_s(self) -> float | None:
        """Return the highest judged rate that passed; None when none did."""
        return max((s.offered_per_s for s in self._judged(True)), default=None)

    @property
    def failed_per_s(self) -> float | None:
        """Return the lowest judged failing rate above every pass (the bracket's top); None when none."""
        floor = self.passed_per_s or 0.0
        return min((s.offered_per_s for s in self._judged(False) if s.offered_per_s > floor), default=None)

    @property
    def non_monotone(self) -> tuple[float, ...]:
        """Return the failing rates that lie below a passing one, ascending (empty: monotone)."""
        top = self.passed_per_s
        return tuple(sorted({s.offered_per_s for s in self._judged(False) if top and s.offered_per_s < top}))

    def _judged(self, passed: bool) -> list[StepVerdict]:
        return [s for s in self.steps if s.judged and s.passed == passed]

    def next_rate(self) -> float | None:
        """Return the next total rate to offer; None when the search is over."""
        if not self.steps:
            return self.start_per_s
        rate = self._bracket_next()
        return rate if rate is not None else self._probe_next()

    def _bracket_next(self) -> float | None:
        passed, failed = self.passed_per_s, self.failed_per_s
        if failed is None:
            return passed * RAMP_FACTOR
        if passed is None:  # descend from a failing start, then give up
            lower = failed / RAMP_FACTOR
            return lower if lower >= self.start_per_s / RAMP_FACTOR ** DESCENTS * (1 - 1e-9) else None
        if (failed - passed) / passed <= self.resolution:
            return None
        return (passed + failed) / 2

    def _probe_next(self) -> float | None:
        """Return the next rate that checks the answer against the reference; None when none is due."""
        if self._planned is None:
            self._planned = list(probe_rates(self.passed_per_s, max(s.offered_per_s for s in self.steps),
                                             self.reference_per_s))
        if not self._planned:
            return None
        self.probes.append(self._planned.pop(0))
        return self.probes[-1]

    def record(self, verdict: StepVerdict) -> None:
        """Take one step into the search; a probe that passes ends the probing (the bracket moves up)."""
        self.steps.append(verdict)
        if verdict.judged and verdict.passed and self.probes and verdict.offered_per_s == self.probes[-1]:
            self._planned = []


def probe_rates(passed_per_s: float | None, highest_per_s: float, reference_per_s: float | None) -> tuple[float, ...]:
    """Return the rates above ``highest_per_s`` to offer before trusting an answer far below the reference.

    None are due without a reference, or when the answer (``passed_per_s``) is at least
    1/``FAR_BELOW`` of it. Otherwise: x``PROBE_FACTOR`` steps from the highest rate offered while at
    least x2 below half the reference, then half the reference (a rate the system carried closed
    loop, with room for its latency).
    """
    if not reference_per_s or (passed_per_s is not None and passed_per_s * FAR_BELOW >= reference_per_s):
        return ()
    top, rates = reference_per_s / 2, []
    rate = highest_per_s * PROBE_FACTOR
    while rate * RAMP_FACTOR <= top:  # a probe within x2 of the top adds little: the top is probed anyway
        rates.append(rate)
        rate *= PROBE_FACTOR
    return (*rates, top) if top > highest_per_s else tuple(rates)


def _rate(per_s: float) -> str:
    """Return a rate as words read it: 6.25/s, 400/s, 12,500/s."""
    return f"{per_s:,.0f}/s" if per_s >= 100 else f"{per_s:.3g}/s"


def search_note(search: RateSearch) -> str | None:
    """Return what to know before trusting a search's answer (non-monotone steps, far below closed loop)."""
    cap, reference = search.passed_per_s, search.reference_per_s
    far = reference and (cap is None or cap * FAR_BELOW < reference)
    if search.non_monotone:
        fails = ", ".join(_rate(r) for r in search.non_monotone)
        still = f" It is still 1/{reference / cap:.0f} of the closed-loop {_rate(reference)}." if far else ""
        flagged = sorted({f for s in search.steps if s.offered_per_s in search.non_monotone for f in s.disturbed},
                         key=DISTURBED.index)
        still += f" The failing steps were flagged {', '.join(flagged)}: a quieter machine helps too." if flagged else ""
        return (f"not monotone: {fails} failed below {_rate(cap)}, which passed; the capacity is the highest "
                "passing rate. Low rates bring few requests per round, so a percentile's upper bound is wide "
                "there; give more rounds per step, a longer min time or a looser percentile to trust the low "
                f"steps.{still}")
    if search.probes and far:
        probes = ", ".join(_rate(r) for r in search.probes)
        answer = ("no rate met the SLO, and probes above the rates tried" if cap is None else
                  f"the answer is 1/{reference / cap:.0f} of the closed-loop {_rate(reference)}, and probes above it")
        flagged = sorted({f for s in search.steps if s.offered_per_s in search.probes for f in s.disturbed},
                         key=DISTURBED.index)
        if flagged:
            return (f"{answer}, at {probes}, failed too, but they were flagged {', '.join(flagged)}: rerun on a "
                    "quiet machine before trusting this answer.")
        return f"{answer}, at {probes}, failed too: at this SLO the system carries far less than closed loop."
    return None


@dataclass(frozen=True, slots=True)
class CapacityFit:
    """capacity(N) fitted: the USL with four or more N, Amdahl with three, else a line through the origin."""

    model: str
    usl: tuple[float, float, float] | None = None
    """(λ, σ, κ) when the USL was fitted."""
    amdahl: tuple[float, float] | None = None
    """(X1, s) when Amdahl was fitted."""
    per_n: float = 0.0
    """The line's slope: the best measured capacity per N (neither model fitted)."""
    peak_n: float | None = None

    def __call__(self, n: float) -> float:
        if self.usl:
            lam, sigma, kappa = self.usl
            return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))
        if self.amdahl:
            x1, s = self.amdahl
            return x1 * n / (1 + s * (n - 1))
        return self.per_n * n


def fit_capacity(ns: Sequence[int], values: Sequence[float]) -> CapacityFit:
    """Fit capacity(N) as the sweep's scaling fits do (``analysis.scaling``); a line when they cannot."""
    from orchestrator.analysis import scaling

    try:
        if len(set(ns)) >= 4:
            u = scaling.fit_usl(ns, values)
            return CapacityFit("USL", usl=(u.lambda_, u.sigma, u.kappa), peak_n=u.peak_n)
        if len(set(ns)) >= 3:
            a = scaling.fit_amdahl(ns, values)
            return CapacityFit("Amdahl", amdahl=(a.x1, a.serial_fraction))
    except (scaling.NotEnoughPoints, RuntimeError, ValueError):
        pass
    return CapacityFit("a line through the origin at the best point's capacity per N",
                       per_n=max(v / n for n, v in zip(ns, values)))


def nodes_needed(ns: Sequence[int], capacities: Sequence[float], low: Sequence[float], high: Sequence[float],
                 load_per_s: float) -> dict[str, Any]:
    """Return the smallest N that carries ``load_per_s``, with an interval; never one the measurements deny.

    A measured N carries the load when its own figure does: its capacity for the answer, its
    bracket's low end for the pessimistic bound and high end for the optimistic one. Between and
    beyond the measured N the model is ``fit_capacity``'s, fitted only to the N up to where
    capacity stops rising (``capacity_advice.rising_until``) and extrapolated past the largest N
    only when it rose at every step. Returns {"n", "n_low", "n_high", "model", "peak_n", "note",
    "stops_at"}; n is None when the load cannot be met within the fitted peak N*, 64 x the largest
    N measured, or (``stops_at``: the N after which capacity stopped rising) any N measured.
    """
    from orchestrator.analysis.capacity_advice import fitted_peak, rising_until, scale_steps

    top_n = rising_until(ns, scale_steps(ns, low, high))
    rising = top_n == max(ns)
    ceiling = 64 * max(ns) if rising else top_n
    kept = [i for i, n in enumerate(ns) if n <= top_n]

    def smallest(values: Sequence[float]) -> tuple[int | None, CapacityFit]:
        fit = fit_capacity([ns[i] for i in kept], [values[i] for i in kept])
        measured = dict(zip(ns, values))
        top = min(ceiling, int(fit.peak_n)) if fit.peak_n else ceiling
        by_fit = next((n for n in range(1, top + 1) if measured.get(n, fit(n)) >= load_per_s), None)
        by_measure = min((n for n, v in measured.items() if v >= load_per_s), default=None)
        return min((n for n in (by_fit, by_measure) if n is not None), default=None), fit

    (n, central), (n_low, _), (n_high, _) = smallest(capacities), smallest(high), smallest(low)
    peak = central.peak_n if rising else fitted_peak(ns, capacities)
    note = None
    if n is None and rising:
        note = (f"cannot be met within the fitted peak N* {central.peak_n:.1f}" if central.peak_n else
                f"cannot be met within {ceiling} (64 x the largest N measured)")
    return {"n": n, "n_low": n_low if n_low is not None else n, "n_high": n_high, "model": central.model,
            "peak_n": peak, "note": note, "stops_at": None if rising else top_n}


@dataclass(frozen=True, slots=True)
class CapacityGoal:
    """What a capacity search is asked, from ``topobench capacity``'s flags or a sweep's ``[capacity]``.

    Attributes:
        slos: the latency objectives every step is judged against.
        resolution: the search ends when the last pass and first fail are this close (a fraction).
        start_per_s: the first offered rate (total); 0 starts at a quarter of the closed-loop rate.
        load_per_s: a load to place: the answer says how many N it needs (None: no question).
    """

    slos: tuple[Slo, ...]
    resolution: float = 0.05
    start_per_s: float = 0.0
    load_per_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the goal as JSON-ready values (stored in the run's spec)."""
        return {"slo": ", ".join(str(s) for s in self.slos), "resolution": self.resolution,
                "start_rate": self.start_per_s, "load": self.load_per_s}


def parse_goal(slo: str, resolution: str, start_rate: float, load: str | None = None,
               name: Callable[[str], str] = str) -> CapacityGoal:
    """Return the validated ``CapacityGoal``; ``name`` turns a flag ("--slo") into how the input is named.

    Raises:
        UserError: a malformed SLO or load, a resolution not above 0, or a start rate that is
            neither 0 nor a finite number of at least 1/s (below that one step would last hours).
    """
    from orchestrator.analysis.compare import parse_threshold

    slos = parse_slos(slo, name("--slo"))
    fraction = parse_threshold(resolution, option=name("--resolution"), allowed="above 0% and below 100%")
    if fraction <= 0:
        raise UserError(f"{name('--resolution')} {resolution!r} must be above 0, e.g. 5%.")
    if type(start_rate) not in (int, float) or not (start_rate == 0 or 1 <= start_rate < math.inf):
        raise UserError(f"{name('--start-rate')} {start_rate!r} must be a number of requests/s: 0 (a quarter "
                        "of the closed-loop rate) or at least 1, e.g. 500.")
    load_per_s = parse_load(load, name("--load")) if load is not None else None
    return CapacityGoal(slos, fraction, float(start_rate), load_per_s)


def check_rounds(repetitions: int, name: str = "--repetitions") -> None:
    """Refuse fewer rounds per step than an upper bound of a percentile needs.

    Raises:
        UserError: ``repetitions`` is below ``MIN_ROUNDS``.
    """
    if repetitions < MIN_ROUNDS:
        raise UserError(f"{name} {repetitions} is too few for a capacity search: an upper 95% bound of a "
                        f"percentile needs at least {MIN_ROUNDS} rounds per step.")
