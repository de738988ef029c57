"""Did any metric change significantly between two runs?

Trials are matched by workload, parameters, nodes, workers, placement, threads per worker
and mode. The unit compared is the round: each round's mean over its workers (all workers
start a round together, so their samples of it are not independent). Each metric's rounds
of both runs go through ``stats.compare`` (ratio of medians with a bootstrap CI, Mann-Whitney
U p-value); the verdicts of all metrics and workloads of the comparison are then judged
together with Holm's step-down (Holm 1979, ``stats.judge_family``), so the chance of any
false "faster"/"slower" stays within alpha. Descriptive metrics get no verdict. A verdict on a
flagged trial (unstable, noisy, desynchronized, ...) carries the flags as its caveat: the test
assumes rounds that vary only by chance, which a flag says they may not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from orchestrator.records import COMPARE_KEY, RunRounds
from workloads.errors import UserError


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
    """Rounds on the BASE side."""
    new_n: int
    base_median: float
    new_median: float
    ratio: float | None
    """NEW/BASE of the medians; None when BASE's median is 0."""
    ratio_ci_low: float | None
    ratio_ci_high: float | None
    p_value: float | None
    """Two-sided Mann-Whitney U p-value of the rounds; None when not tested."""
    p_adjusted: float | None
    """Holm-adjusted p-value within the whole comparison; None when not tested."""
    verdict: str
    """faster | slower | no significant change | too few samples to tell (n=…) | descriptive | n/a."""
    regression: bool
    """Significantly worse by more than the --fail-on-regression threshold."""
    base_flags: tuple[str, ...] = ()
    """The BASE trial's flags on this metric (unstable, noisy, desynchronized, ...)."""
    new_flags: tuple[str, ...] = ()
    caveat: str = ""
    """What weakens the verdict: the flags of either side ("NEW unstable"); empty when none."""


@dataclass(frozen=True, slots=True)
class CompareResult:
    """All metric comparisons of two runs plus the configurations only one run has."""

    base_run: str
    new_run: str
    rows: tuple[MetricComparison, ...]
    only_base: tuple[str, ...]
    only_new: tuple[str, ...]
    threshold: float | None
    alpha: float = 0.01
    notes: tuple[str, ...] = ()
    """What to know before trusting the rows (a run that did not complete)."""

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


def _better(higher_is_better: bool | None) -> str | None:
    return None if higher_is_better is None else ("higher" if higher_is_better else "lower")


def _describe(key: tuple) -> str:
    workload, params, nodes, workers, placement = key[:5]
    return f"{workload} {params} nodes={nodes} workers={workers} placement={placement}"


def compare_runs(base: RunRounds, new: RunRounds, *, threshold: float | None = None,
                 alpha: float = 0.01, seed: int = 0) -> CompareResult:
    """Compare every metric of matched trials of run ``new`` against run ``base``.

    Args:
        base, new: the two runs' rounds (``store.queries.run_rounds``).
        threshold: fraction (0.05 = 5%) beyond which a significant slowdown is a regression;
            None marks no row as a regression.
        alpha: family-wise significance level of the whole comparison (Holm).
        seed: seed of the bootstrap (results are reproducible).

    Raises:
        UserError: no trials in common.
    """
    import numpy as np

    from orchestrator.analysis.stats import compare, judge_family, regression

    width = len(COMPARE_KEY)
    matched: list[tuple[dict, object]] = []
    for key in sorted(base.metrics.keys() & new.metrics.keys(), key=str):
        b, n = base.metrics[key], new.metrics[key]
        if not b.units or not n.units:
            continue
        common = dict(zip(COMPARE_KEY, key[:width]))
        fields = {"workload": common["workload"], "params": common["params"], "nodes": common["nodes"],
                  "workers": common["workers"], "placement": common["placement"], "metric": key[width],
                  "unit": n.unit, "higher_is_better": n.higher_is_better, "base_n": len(b.units),
                  "new_n": len(n.units), "base_flags": b.flags, "new_flags": n.flags}
        try:
            c = compare(b.units, n.units, better=_better(n.higher_is_better), alpha=alpha, seed=seed)
        except ValueError:  # BASE median 0: ratio undefined
            fields.update(base_median=float(np.median(b.units)), new_median=float(np.median(n.units)))
            c = None
        matched.append((fields, c))
    judged = iter(judge_family([c for _, c in matched if c is not None], alpha))
    rows = []
    for fields, c in matched:
        if c is None:
            rows.append(MetricComparison(**fields, ratio=None, ratio_ci_low=None, ratio_ci_high=None, p_value=None,
                                         p_adjusted=None, verdict="n/a", regression=False))
            continue
        j = next(judged)
        verdict = j.verdict
        if verdict == "too few samples to tell":
            verdict += f" (n={j.base_n} vs {j.new_n})"
        rows.append(MetricComparison(
            **fields, base_median=j.base_median, new_median=j.new_median, ratio=j.ratio,
            ratio_ci_low=j.ratio_ci_low, ratio_ci_high=j.ratio_ci_high, p_value=j.p_value,
            p_adjusted=j.p_adjusted, verdict=verdict,
            regression=threshold is not None and regression(j, threshold),
            caveat=caveat(verdict, fields["base_flags"], fields["new_flags"])))
    configs_b = {k[:width] for k in base.metrics}
    configs_n = {k[:width] for k in new.metrics}
    notes = tuple(note for note in (incomplete_note(base, "BASE"), incomplete_note(new, "NEW")) if note)
    if not rows:
        pending = [(side, run) for side, run in (("BASE", base), ("NEW", new)) if run.status not in (None, "complete")]
        if pending:
            side, run = pending[0]
            fix = ("compare again when it has completed" if run.status == "running" else
                   "resume it, or compare a run that stored this benchmark's trials")
            raise UserError(f"Runs {base.run_id} and {new.run_id} have no trial in common yet: {side} run "
                            f"{run.run_id} is {run.status} and has stored {_stored(run)}; {fix}.")
        raise UserError(f"Runs {base.run_id} and {new.run_id} have no trial in common (same workload, parameters, "
                        "nodes, workers and placement); compare runs of the same benchmark.")
    return CompareResult(base.run_id, new.run_id, tuple(rows),
                         tuple(sorted(_describe(k) for k in configs_b - configs_n)),
                         tuple(sorted(_describe(k) for k in configs_n - configs_b)), threshold, alpha, notes)


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
