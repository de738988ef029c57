"""Variance components of one metric between runs, between invocations and between rounds.

The model (log scale, so components are squared relative spreads): a round's unit is
log y = mu + run + invocation + round, each term independent with mean 0 and variance
between_runs, between_invocations, between_rounds. Each is estimated level by level as
Kalibera & Jones (2013) do, by the method of moments of the one-way random-effects ANOVA with
unequal group sizes (Searle, Casella & McCulloch 1992, §3.6): rounds within invocations,
invocations (their means of rounds) within runs, runs (their means of invocation means)
between. Estimates below 0 are reported as 0, as they do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from orchestrator.analysis.invocations import as_invocations


@dataclass(frozen=True, slots=True)
class VarianceComponents:
    """Variances of log units at each level (≈ squared relative sd: 0.03² for 3%), and shares.

    A level with too few units to separate it is None: between_runs with one run, or where no
    run has two invocations (then between_invocations holds runs and invocations together);
    between_invocations where no run has two; between_rounds where no invocation has two.
    """

    between_runs: float | None
    """Variance between runs beyond their invocations' (time, reboots, the Ray cluster)."""
    between_invocations: float | None
    """Variance between invocations of one run beyond their rounds' (process-level state)."""
    between_rounds: float | None
    """Variance between rounds of one invocation (a round's unit: its mean over workers)."""
    run_fraction: float | None
    """between_runs / the sum of the estimated components (the variance of one round's unit)."""
    invocation_fraction: float | None
    round_fraction: float | None
    runs: int
    invocations: int
    """Invocations over all runs."""
    rounds: int
    """Rounds over all invocations."""
    runs_df: int
    """Degrees of freedom of the runs' mean square: runs − 1."""
    invocations_df: int
    """Of the invocations' mean square within runs: the sum of (invocations − 1) per run."""
    rounds_df: int
    """Of the rounds' mean square within invocations: the sum of (rounds − 1) per invocation."""


def _one_way(means: list[np.ndarray], sizes: list[np.ndarray]) -> tuple[float, float, int]:
    """Return (mean square between units within groups, n0, df) of one nested level.

    means[g][i], sizes[g][i]: unit i of group g (its mean and how many values it averages);
    E[MS] = within-unit variance + n0 × between-unit variance (Searle et al. 1992, §3.6).
    """
    ss, df, n0 = 0.0, 0, 0.0
    for m, n in zip(means, sizes, strict=True):
        total = float(n.sum())
        ss += float((n * (m - (n * m).sum() / total) ** 2).sum())
        df += m.size - 1
        n0 += total - float((n**2).sum()) / total
    return (ss / df, n0 / df, df) if df > 0 else (float("nan"), float("nan"), 0)


def _pooled_within(inv_means: list[np.ndarray]) -> float:
    """Return the pooled variance of invocation means within runs (each invocation weighs 1)."""
    ss = sum(float(((m - m.mean()) ** 2).sum()) for m in inv_means)
    return ss / sum(m.size - 1 for m in inv_means)


def variance_components(runs: Sequence[Sequence[Sequence[float] | np.ndarray]]) -> VarianceComponents:
    """Estimate the between-run, between-invocation and between-round variances of log units.

    Args:
        runs: per run, per invocation, the per-round units (means over workers), all positive;
            one trial: ``[invocations]``.

    Returns:
        The components and their shares; unbalanced counts are fine.

    Raises:
        ValueError: no run, an empty invocation, or a unit that is not finite and positive.
    """
    if not runs:
        raise ValueError("runs is empty; at least one run is needed")
    logs: list[list[np.ndarray]] = []
    for j, run in enumerate(runs):
        invocations = as_invocations(run, f"runs[{j}]")
        if any(np.any(x <= 0.0) for x in invocations):
            raise ValueError(f"runs[{j}] has a unit <= 0; components are of logs, of positive units")
        logs.append([np.log(x) for x in invocations])
    flat = [x for run in logs for x in run]
    rounds_df = sum(x.size - 1 for x in flat)
    within_rounds = (sum(float(((x - x.mean()) ** 2).sum()) for x in flat) / rounds_df
                     if rounds_df else None)
    inv_means = [np.array([x.mean() for x in run]) for run in logs]
    ms_inv, n0_inv, inv_df = _one_way(inv_means, [np.array([x.size for x in run]) for run in logs])
    between_invocations = between_runs = None
    if inv_df and within_rounds is not None:
        between_invocations = max(0.0, (ms_inv - within_rounds) / n0_inv)
    if len(logs) >= 2:
        run_means = [np.array([m.mean()]) for m in inv_means]
        ones = [np.array([float(m.size)]) for m in inv_means]
        ms_runs, k0, _ = _one_way([np.concatenate(run_means)], [np.concatenate(ones)])
        if inv_df:
            between_runs = max(0.0, (ms_runs - _pooled_within(inv_means)) / k0)
        elif within_rounds is not None:  # one invocation per run: runs and invocations together
            r = len(flat) / sum(1.0 / x.size for x in flat)
            between_invocations = max(0.0, ms_runs - within_rounds / r)
    parts = (between_runs, between_invocations, within_rounds)
    total = sum(v for v in parts if v is not None)
    shares = [None if v is None else (v / total if total > 0 else 0.0) for v in parts]
    return VarianceComponents(
        between_runs=between_runs,
        between_invocations=between_invocations,
        between_rounds=within_rounds,
        run_fraction=shares[0],
        invocation_fraction=shares[1],
        round_fraction=shares[2],
        runs=len(logs),
        invocations=len(flat),
        rounds=sum(x.size for x in flat),
        runs_df=len(logs) - 1,
        invocations_df=inv_df,
        rounds_df=rounds_df,
    )
