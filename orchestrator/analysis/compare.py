"""Did any metric change significantly between two sets of runs?

Trials are matched by workload, parameters, nodes, workers, placement, threads per worker
and mode. Each side is one or more runs; a run's rounds (each round's mean over its workers:
they start a round together, so their samples of it are not independent) are grouped by
invocation. Each metric goes through ``hierarchical.compare_hierarchical``, which compares the
sides at the level their data allow, its ``basis``: "runs" with two or more runs per side,
"prior" when a between-run variance measured over earlier runs of the same code is given
(``analysis.prior_runs``), "invocations" with one run per side, and "rounds" with one invocation
per side, which gives no verdict (what a process start changes is not in the data). The
verdicts of all metrics and workloads are then judged together with Holm's step-down (Holm
1979, ``stats.judge_family``), so the chance of any false "faster"/"slower" stays within
alpha. Descriptive metrics get no verdict. A verdict on a flagged trial (unstable, noisy,
desynchronized, ...) carries the flags as its caveat: the test assumes rounds that vary only
by chance, which a flag says they may not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from orchestrator.analysis.hierarchical import PriorVariance, compare_hierarchical
from orchestrator.analysis.stats import judge_family, regression
from orchestrator.records import COMPARE_KEY, RunRounds
from workloads.errors import UserError

if TYPE_CHECKING:
    from orchestrator.analysis.stats import Comparison
    from workloads.base import Better


@dataclass(frozen=True, slots=True)
class MetricComparison:
    """One metric of one matched trial configuration, BASE against NEW."""

    workload: str
    params: str
    """Workload parameters as JSON."""
    nodes: int
    workers: int
    placement: str
    metric: str
    unit: str
    higher_is_better: bool | None
    """Direction of the metric; None for a descriptive one (no verdict)."""
    base_n: int
    """Units on the BASE side at the basis' level: runs ("runs"), invocations, or rounds."""
    new_n: int
    base_median: float
    new_median: float
    ratio: float | None
    """NEW/BASE of the figures; None when BASE's is 0."""
    ratio_ci_low: float | None
    ratio_ci_high: float | None
    p_value: float | None
    """Two-sided p-value of the basis' test (Student t on log figures; Mann-Whitney U on rounds)."""
    p_adjusted: float | None
    """Holm-adjusted p-value within the whole comparison; None when not tested."""
    verdict: str
    """faster | slower | no significant change | too few samples to tell (…) | descriptive | n/a."""
    regression: bool
    """Significantly worse by more than the --fail-on-regression threshold."""
    base_flags: tuple[str, ...] = ()
    """The BASE trial's flags on this metric (unstable, noisy, desynchronized, ...)."""
    new_flags: tuple[str, ...] = ()
    caveat: str = ""
    """What weakens the verdict: the flags of either side ("NEW unstable"); empty when none."""
    basis: str = "rounds"
    """What the CI and test account for: runs | prior | invocations | rounds (``stats.Basis``)."""
    base_runs: int = 1
    new_runs: int = 1
    base_invocations: int = 1
    """Invocations over BASE's runs."""
    new_invocations: int = 1
    base_rounds: int = 0
    """Rounds over BASE's runs."""
    new_rounds: int = 0
    prior_runs: int = 0
    """Runs of history behind the prior (basis "prior"), else 0."""
    threads_per_worker: int = 1
    mode: str = "weak"

    @property
    def config(self) -> tuple:
        """Return the ``COMPARE_KEY`` values of the configuration compared."""
        return (self.workload, self.params, self.nodes, self.workers, self.placement, self.threads_per_worker,
                self.mode)


@dataclass(frozen=True, slots=True)
class CompareResult:
    """All metric comparisons of two sets of runs plus the configurations only one side has."""

    base_runs: tuple[str, ...]
    new_runs: tuple[str, ...]
    rows: tuple[MetricComparison, ...]
    only_base: tuple[str, ...]
    only_new: tuple[str, ...]
    threshold: float | None
    alpha: float = 0.01
    notes: tuple[str, ...] = ()
    """What to know before trusting the rows: what a weak basis leaves out, where the prior came from."""
    warnings: tuple[str, ...] = ()
    """What may make the rows partial: a run that did not complete."""
    prior_runs: tuple[str, ...] = ()
    """The runs a prior came from (any row's), oldest last."""

    @property
    def base_run(self) -> str:
        """Return BASE's run ids joined by commas."""
        return ",".join(self.base_runs)

    @property
    def new_run(self) -> str:
        """Return NEW's run ids joined by commas."""
        return ",".join(self.new_runs)

    @property
    def bases(self) -> tuple[str, ...]:
        """Return the distinct bases of the tested rows (all rows when none is), most informative first."""
        rows = [r for r in self.rows if r.higher_is_better is not None] or self.rows
        return tuple(b for b in ("runs", "prior", "invocations", "rounds") if any(r.basis == b for r in rows))

    @property
    def regressions(self) -> tuple[MetricComparison, ...]:
        """Return the rows that count as regressions."""
        return tuple(r for r in self.rows if r.regression)


def parse_threshold(text: str, option: str = "--fail-on-regression", allowed: str = "from 0% to below 100%") -> float:
    """Parse "5%" or "0.05" into a fraction (0.05); raise UserError (naming ``option``) when not in [0, 1).

    ``allowed`` states the range in the message for a number outside it.
    """
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UserError(f"{option} {text!r} is not a percentage; give one such as 5% or 0.05.") from None
    if not 0.0 <= value < 1.0 or math.isnan(value):
        raise UserError(f"{option} {text!r} is out of range; give a percentage {allowed}, such as 5% or 0.05.")
    return value


def _describe(key: tuple) -> str:
    workload, params, nodes, workers, placement = key[:5]
    return f"{workload} {params} nodes={nodes} workers={workers} placement={placement}"


BASIS_NOTES = {
    "invocations": ("one run per side: the interval covers invocations and rounds, not what differs between "
                    "runs (time, the Ray session); two runs per side or a prior (--prior) cover that too"),
    "rounds": ("one invocation per side: no verdict, since what a fresh process changes (pages, ASLR, JIT) is "
               "not in the data; measure with --invocations 3 or more, or compare two runs per side"),
}
"""What each weaker basis leaves out, said once per comparison that uses it."""


def _side(runs: Sequence[RunRounds], key: tuple) -> list[tuple[tuple[float, ...], ...]]:
    """Return per run that has ``key``, its rounds by invocation (empty invocations dropped)."""
    out = []
    for run in runs:
        m = run.metrics.get(key)
        invocations = tuple(inv for inv in (m.invocations if m else ()) if inv)
        if invocations:
            out.append(invocations)
    return out


def _flags(runs: Sequence[RunRounds], key: tuple) -> tuple[str, ...]:
    """Return the flags any of ``runs`` carries on ``key``, sorted."""
    return tuple(sorted({f for run in runs if key in run.metrics for f in run.metrics[key].flags}))


def _prior(runs: Sequence[RunRounds], key: tuple) -> tuple[PriorVariance | None, int]:
    """Return the prior of ``key`` from the history runs that have it (2 or more), and how many."""
    side = _side(runs, key)
    if len(side) < 2:
        return None, 0
    try:
        return PriorVariance.from_runs(side), len(side)
    except ValueError:  # a unit <= 0: no log-scale variance
        return None, 0


def _compare_one(base: list, new: list, better: Better, prior: PriorVariance | None, alpha: float,
                 seed: int) -> Comparison | None:
    """Return the hierarchical comparison of one metric; rounds pooled where figures are not all positive."""
    try:
        if better is None:  # descriptive: no test; the rounds' figures and ratio
            return compare_hierarchical(base, new, better=None, alpha=alpha, seed=seed, basis="rounds")
        return compare_hierarchical(base, new, better=better, alpha=alpha, seed=seed, prior=prior)
    except ValueError:
        try:  # a figure <= 0 has no log: pooled rounds, no verdict
            return compare_hierarchical(base, new, better=better, alpha=alpha, seed=seed, basis="rounds")
        except ValueError:  # BASE's median 0: the ratio is undefined
            return None


def compare_runs(base: Sequence[RunRounds] | RunRounds, new: Sequence[RunRounds] | RunRounds, *,
                 threshold: float | None = None, alpha: float = 0.01, seed: int = 0,
                 prior: Sequence[RunRounds] = (), prior_note: str = "") -> CompareResult:
    """Compare every metric of matched trials of the NEW runs against the BASE runs.

    Args:
        base, new: each side's runs (``store.queries.run_rounds``), or one run.
        threshold: fraction (0.05 = 5%) beyond which a significant slowdown is a regression;
            None marks no row as a regression.
        alpha: family-wise significance level of the whole comparison (Holm).
        seed: seed of the bootstrap (results are reproducible).
        prior: earlier runs of the same code and machine (``analysis.prior_runs``); per
            configuration, those that have it lend a between-run variance when 2 or more do.
        prior_note: where the prior runs came from, shown with the result.

    Raises:
        UserError: no trials in common.
    """
    base = (base,) if isinstance(base, RunRounds) else tuple(base)
    new = (new,) if isinstance(new, RunRounds) else tuple(new)
    width = len(COMPARE_KEY)
    keys = {k for r in base for k in r.metrics} & {k for r in new for k in r.metrics}
    matched: list[tuple[dict, Comparison | None]] = []
    used_prior = False
    for key in sorted(keys, key=str):
        b, n = _side(base, key), _side(new, key)
        if not b or not n:
            continue
        first = next(r.metrics[key] for r in new if key in r.metrics)
        better: Better = None if first.higher_is_better is None else ("higher" if first.higher_is_better else "lower")
        history, history_runs = _prior(prior, key)
        common = dict(zip(COMPARE_KEY, key[:width]))
        fields = {"workload": common["workload"], "params": common["params"], "nodes": common["nodes"],
                  "workers": common["workers"], "placement": common["placement"], "metric": key[width],
                  "threads_per_worker": common["threads_per_worker"], "mode": common["mode"],
                  "unit": first.unit, "higher_is_better": first.higher_is_better,
                  "base_runs": len(b), "new_runs": len(n), "base_invocations": sum(len(r) for r in b),
                  "new_invocations": sum(len(r) for r in n), "base_rounds": sum(len(i) for r in b for i in r),
                  "new_rounds": sum(len(i) for r in n for i in r),
                  "base_flags": _flags(base, key), "new_flags": _flags(new, key)}
        c = _compare_one(b, n, better, history, alpha, seed)
        if c is None:
            fields.update(base_median=float(np.median([v for r in b for i in r for v in i])),
                          new_median=float(np.median([v for r in n for i in r for v in i])))
        elif c.basis == "prior":
            fields["prior_runs"] = history_runs
            used_prior = True
        matched.append((fields, c))
    judged = iter(judge_family([c for _, c in matched if c is not None], alpha))
    rows = []
    for fields, c in matched:
        if c is None:
            rows.append(MetricComparison(**fields, base_n=fields["base_rounds"], new_n=fields["new_rounds"],
                                         ratio=None, ratio_ci_low=None, ratio_ci_high=None, p_value=None,
                                         p_adjusted=None, verdict="n/a", regression=False))
            continue
        j = next(judged)
        verdict = j.verdict
        if verdict == "too few samples to tell":
            verdict += f" (invocations {fields['base_invocations']} vs {fields['new_invocations']})"
        rows.append(MetricComparison(
            **fields, base_n=j.base_n, new_n=j.new_n, base_median=j.base_median, new_median=j.new_median,
            ratio=j.ratio, ratio_ci_low=j.ratio_ci_low, ratio_ci_high=j.ratio_ci_high, p_value=j.p_value,
            p_adjusted=j.p_adjusted, verdict=verdict, basis=j.basis,
            regression=threshold is not None and regression(j, threshold),
            caveat=caveat(verdict, fields["base_flags"], fields["new_flags"])))
    if not rows:
        pending = [(side, run) for side, runs in (("BASE", base), ("NEW", new)) for run in runs
                   if run.status not in (None, "complete")]
        if pending:
            side, run = pending[0]
            fix = ("compare again when it has completed" if run.status == "running" else
                   "resume it, or compare a run that stored this benchmark's trials")
            raise UserError(f"Runs {_ids(base)} and {_ids(new)} have no trial in common yet: {side} run "
                            f"{run.run_id} is {run.status} and has stored {_stored(run)}; {fix}.")
        raise UserError(f"Runs {_ids(base)} and {_ids(new)} have no trial in common (same workload, parameters, "
                        "nodes, workers and placement); compare runs of the same benchmark.")
    configs_b = {k[:width] for r in base for k in r.metrics}
    configs_n = {k[:width] for r in new for k in r.metrics}
    tested = {r.basis for r in rows if r.higher_is_better is not None}
    warnings = tuple(note for side, name in ((base, "BASE"), (new, "NEW")) for run in side
                     if (note := incomplete_note(run, name)))
    notes = [f"basis {b}: {BASIS_NOTES[b]}" for b in ("invocations", "rounds") if b in tested]
    if prior_note and (prior or tested & {"invocations", "rounds"}):  # a missing prior matters on a weak basis
        unused = (" (not used: with the runs compared it has under 2 degrees of freedom; one run per side needs "
                  "3 runs of history)")
        notes.append(prior_note + ("" if used_prior or not prior else unused))
    return CompareResult(tuple(r.run_id for r in base), tuple(r.run_id for r in new), tuple(rows),
                         tuple(sorted(_describe(k) for k in configs_b - configs_n)),
                         tuple(sorted(_describe(k) for k in configs_n - configs_b)), threshold, alpha, tuple(notes),
                         warnings, tuple(r.run_id for r in prior) if used_prior else ())


def _ids(runs: Sequence[RunRounds]) -> str:
    return ",".join(r.run_id for r in runs)


WEAKENS = {"faster", "slower", "no significant change"}
"""The verdicts a flag weakens (the others are no verdict on a change)."""


def caveat(verdict: str, base_flags: tuple[str, ...], new_flags: tuple[str, ...]) -> str:
    """Return what weakens ``verdict``: each side's flags ("NEW unstable; BASE noisy"); "" when none or no verdict."""
    if verdict not in WEAKENS:
        return ""
    return "; ".join(f"{side} {', '.join(flags)}" for side, flags in (("BASE", base_flags), ("NEW", new_flags))
                     if flags)


def _stored(run: RunRounds) -> str:
    """Return "3 of 12 trials" (or "3 trials so far" when the plan's size is unknown)."""
    if run.trials_total is None:
        return f"{run.trials_stored} trial{'s' if run.trials_stored != 1 else ''} so far"
    return f"{run.trials_stored} of {run.trials_total} trials"


def incomplete_note(run: RunRounds, side: str) -> str:
    """Return a sentence when ``run`` did not complete (its figures may be partial); "" otherwise."""
    if run.status in (None, "complete"):
        return ""
    total = run.trials_total if run.trials_total is not None else "?"
    return (f"{side} run {run.run_id} is {run.status} ({run.trials_stored} of {total} trials "
            "stored): only what it stored is compared.")
