"""From change points to alerts: confirm each candidate on raw samples, control the false discovery
rate across every series scanned together, group same-sign steps, and gate a CI on what is open.

The detector (``changepoints``) sees one robust estimate per point and says where a level may
have moved. Each candidate is then re-tested on the raw rounds of the runs of the points on
either side of it (the adjacent segments, the nearest ``confirm_points`` points of each) with
the run as the unit: ``hierarchical.compare_hierarchical``, the ratio of the sides' figures
with its CI over runs and a Student t test on log run figures, basis chosen by what was
repeated (runs, then invocations, then rounds). Metrics with values ≤ 0 fall back to
``stats.compare`` over the runs' figures (ratio of medians, bootstrap CI, Mann-Whitney U).
The t statistic is deflated by the series' serial dependence as the detector's z is, and the
p-value multiplied by the splits the detector chose among (Bonferroni: the two sides meet where
the difference looked largest). The confirmation p-values of all candidates of all series, and
a p of 1 for each series without a candidate, are adjusted together with Benjamini-Hochberg
(Benjamini & Hochberg 1995): a candidate is confirmed when its adjusted p-value is below
``fdr`` and its ratio's CI excludes 1, so false changes stay a small share of those confirmed
however many series are scanned. The detection p-value stays optimistic (the segment ends were
chosen too); the simulated rates are in tests/test_regressions.py.

The candidates come from ``candidates``: the detector's steps, widened to the ramp they sit
in, and gradual changes it left inside a segment. Neighbouring confirmed changes of one sign
form one regression (or improvement): a step, a two-step, or gradual (three or more steps, two
around a segment that itself trends, or a ramp). A regression is open while the series' latest segment is still worse than the segment before
it by more than the threshold, and no acknowledgement names one of its steps. Pure: records
and mappings in, records out.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from orchestrator.analysis.candidates import Candidate, Noise, candidates, trends
from orchestrator.analysis.series import Point, Series
from orchestrator.settings import HistorySettings

if TYPE_CHECKING:  # imported where used: scipy loads with the detector, and a memoized history needs neither
    from orchestrator.analysis.changepoints import ChangePoint

Invocations = Sequence[Sequence[float]]
"""One run's per-round units (means over workers), grouped by invocation."""

ENVIRONMENT_FIELDS = ("kernel", "microcode", "governor", "python", "ray", "numpy")
"""What an environment difference across a change is told from (a run's ``environment`` mapping)."""

SHAPES = ("step", "two-step", "gradual")


@dataclass(frozen=True, slots=True)
class Ack:
    """An acknowledged change: expected, not failing the gate."""

    change_id: str
    reason: str
    acked_at: datetime | None
    acked_by: str | None


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A candidate re-tested on the raw rounds of the runs on either side."""

    ratio: float | None
    """NEW/BASE of the sides' figures (after/before); None when untestable."""
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    """Two-sided; None when untestable."""
    basis: str
    """runs | invocations | rounds (hierarchical) | run figures (Mann-Whitney) | untestable: why."""
    runs_before: int
    runs_after: int
    p_adjusted: float | None = None
    """Benjamini-Hochberg over every candidate scanned together."""
    confirmed: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """One change point of a series, with the evidence an alert states."""

    id: str
    """10 hex digits of the series and the first-bad point: stable as points are added."""
    index: int
    """Index of the first point after the change (the first-bad point)."""
    last_good: Point
    first_bad: Point
    good_index: int
    """Index of the last-good point: ``index - 1`` for a step, earlier for a gradual change."""
    kind: str
    """regression | improvement | change (a descriptive metric)."""
    shift: float
    """Median of the points after minus before, in the series' unit."""
    level_before: float
    """Median of the point values confirmed before the change (what the gate compares with)."""
    detection: ChangePoint
    confirmation: Confirmation
    environment: tuple[str, ...] = ()
    """What differs between the runs of last-good and first-bad ("kernel 6.1 → 6.5")."""
    unbenchmarked: int | None = None
    """Commits between last-good and first-bad never benchmarked (the range to bisect); None: unknown."""
    shape: str = "step"
    """step | two-step | gradual: the shape of the confirmed group it belongs to."""
    group: str = ""
    """Id of the group's first change (its own id when alone or unconfirmed)."""
    ack: Ack | None = None

    @property
    def confirmed(self) -> bool:
        """Return whether the confirmation (with Benjamini-Hochberg) upheld it."""
        return self.confirmation.confirmed

    @property
    def ratio(self) -> float | None:
        """Return after/before of the confirmation, else of the detector's point medians."""
        if self.confirmation.ratio is not None:
            return self.confirmation.ratio
        before = self.detection.median_before
        return None if before == 0 else self.detection.median_after / before


@dataclass(frozen=True, slots=True)
class SeriesHistory:
    """A series, its change points and its noise."""

    series: Series
    changes: tuple[Change, ...]
    noise_cv: float | None
    """Robust sd of the points about their segments' medians over the series' median."""
    autocorrelation: float

    @property
    def last_change(self) -> Change | None:
        """Return the last confirmed change, else the last candidate, else None."""
        confirmed = [c for c in self.changes if c.confirmed]
        return (confirmed or list(self.changes) or [None])[-1]


@dataclass(frozen=True, slots=True)
class Regression:
    """A confirmed, unacknowledged regression still open in a series' latest segment."""

    series: SeriesHistory
    changes: tuple[Change, ...]
    """Its steps (one unless two-step or gradual)."""
    ratio_now: float
    """The latest segment's median over the median of the segment before the first step."""


@dataclass(frozen=True, slots=True)
class History:
    """Every series scanned together, their changes, and how they were judged."""

    series: tuple[SeriesHistory, ...]
    settings: HistorySettings
    family: int
    """Hypotheses judged together (Benjamini-Hochberg): every candidate, and each series without one."""

    def changes(self) -> list[tuple[SeriesHistory, Change]]:
        """Return every change of every series, series by series."""
        return [(s, c) for s in self.series for c in s.changes]

    def regressions(self, threshold: float = 0.0) -> tuple[Regression, ...]:
        """Return the open regressions worse than ``threshold`` (0.05 = 5%): what fails the gate."""
        return tuple(r for s in self.series for r in open_regressions(s, threshold))


# --- detection ----------------------------------------------------------------------------


def change_id(series: Series, point: Point) -> str:
    """Return the id of a change: 10 hex digits of its series and first-bad point."""
    what = f"{point.commit}|{point.label}" if (point.commit or point.label) else point.run_ids[0]
    return hashlib.sha256(f"{series.id}|{what}".encode()).hexdigest()[:10]


def _kind(better: str | None, ratio: float | None) -> str:
    if better is None or ratio is None or ratio == 1.0:
        return "change"
    return "improvement" if (ratio > 1.0) == (better == "higher") else "regression"


class Memo(Protocol):
    """Results kept between calls (``pipeline.history``'s cache): ``get`` a key's value or None, ``put`` one."""

    def get(self, kind: str, key: str) -> Any: ...

    def put(self, kind: str, key: str, value: Any) -> None: ...


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.tobytes() if isinstance(part, np.ndarray) else repr(part).encode())
        h.update(b"|")
    return h.hexdigest()[:32]


def _candidates_memo(series: Series, settings: HistorySettings, memo: Memo | None) -> tuple[list[Candidate], Noise]:
    """Return ``candidates``, from ``memo`` when the series' values were seen before (they decide them)."""
    from orchestrator.analysis.changepoints import ChangePoint

    if memo is None:
        return candidates(series, settings)
    key = _digest(np.array([p.value for p in series.points]), settings.detect_alpha, settings.min_size,
                  settings.confirm_points)
    found = memo.get("candidates", key)
    if found is None:
        cands, noise = candidates(series, settings)
        memo.put("candidates", key, {"noise": [noise.scale, noise.autocorrelation], "candidates": [
            {"cp": [getattr(c.cp, f.name) for f in fields(ChangePoint)], "before": [c.before.start, c.before.stop],
             "after": [c.after.start, c.after.stop], "good": c.good_index, "splits": c.splits, "rho": c.rho,
             "gradual": c.gradual} for c in cands]})
        return cands, noise
    return ([Candidate(ChangePoint(*c["cp"]), range(*c["before"]), range(*c["after"]), c["good"], c["splits"],
                        c["rho"], c["gradual"]) for c in found["candidates"]], Noise(*found["noise"]))


def _confirm_memo(series: Series, cand: Candidate, rounds: Mapping[Any, Invocations], key: Callable[[str], Any],
                  settings: HistorySettings, memo: Memo | None) -> Confirmation:
    """Return ``confirm``, from ``memo`` when the same runs were compared the same way before."""
    if memo is None:
        return confirm(series, cand, rounds, key, settings)
    runs = [tuple(r for i in side for r in series.points[i].run_ids) for side in (cand.before, cand.after)]
    digest = _digest(series.id, runs, cand.rho, cand.splits, settings.confidence, settings.seed)
    found = memo.get("confirmations", digest)
    if found is None:
        conf = confirm(series, cand, rounds, key, settings)
        memo.put("confirmations", digest, [getattr(conf, f.name) for f in fields(Confirmation)][:7])
        return conf
    return Confirmation(*found)


# --- confirmation -------------------------------------------------------------------------


def _side_runs(points: Sequence[Point], indices: range, key: Callable[[str], Any],
               rounds: Mapping[Any, Invocations]) -> list[Invocations]:
    return [rounds[key(r)] for i in indices for r in points[i].run_ids if key(r) in rounds]


def confirm(series: Series, cand: Candidate, rounds: Mapping[Any, Invocations],
            key: Callable[[str], Any], settings: HistorySettings) -> Confirmation:
    """Return one candidate re-tested on the raw rounds of the runs on either side (module docstring).

    The t statistic is deflated by the AR(1) inflation √((1+ρ)/(1−ρ)) of the noise, as the
    detector's z is (Zwiers & von Storch 1995), and the CI widened by it on the log scale; the
    p-value is then multiplied by the places the candidate was chosen among (Bonferroni), since
    the two sides meet where the difference looked largest.

    Args:
        rounds: per ``key(run_id)``, that run's rounds of this series grouped by invocation.
    """
    from scipy.special import stdtr

    from orchestrator.analysis.hierarchical import available_bases, hierarchical_test
    from orchestrator.analysis.stats import compare

    before = _side_runs(series.points, cand.before, key, rounds)
    after = _side_runs(series.points, cand.after, key, rounds)
    counts = (len(before), len(after))
    if not before or not after:
        return Confirmation(None, None, None, None, "untestable: no stored rounds on one side", *counts)
    inflation = math.sqrt((1 + cand.rho) / (1 - cand.rho))
    figures = [np.array([float(np.median([np.median(x) for x in run])) for run in side]) for side in (before, after)]
    try:
        basis = available_bases(before, after)[0]
        if basis == "rounds":  # one run of one invocation a side: a process start's effect is not in the data
            return Confirmation(None, None, None, None, "untestable: one run on a side", *counts)
        test, low, high = hierarchical_test(before, after, basis=basis, confidence=settings.confidence,
                                            seed=settings.seed)
        t = abs(float(test.delta_log)) / (float(test.se_log) * inflation) if test.se_log > 0 else math.inf
        p = float(2 * stdtr(float(test.df), -t)) if math.isfinite(t) else (
            1.0 if test.delta_log == 0 else 0.0)
    except ValueError:  # values <= 0: no log scale; the runs' figures by rank instead
        try:
            c = compare(figures[0], figures[1], better=series.key.better or "higher", alpha=settings.fdr,
                        confidence=settings.confidence, seed=settings.seed)
        except ValueError:
            return Confirmation(None, None, None, None, "untestable: the median before is 0", *counts)
        basis, low, high, p = "run figures", c.ratio_ci_low, c.ratio_ci_high, c.p_value
    ratio = float(np.median(figures[1]) / np.median(figures[0])) if np.median(figures[0]) else None
    if ratio is not None and ratio > 0 and low is not None and low > 0:
        low = ratio * (min(float(low), ratio) / ratio) ** inflation
        high = ratio * (max(float(high), ratio) / ratio) ** inflation
    return Confirmation(ratio, None if low is None else float(low), None if high is None else float(high),
                        min(1.0, cand.splits * p), basis, *counts)


def judge(confirmations: Sequence[Confirmation], fdr: float, quiet: int = 0) -> list[Confirmation]:
    """Return the confirmations with Benjamini-Hochberg across all of them and the verdict.

    ``quiet`` counts the series scanned without a candidate: each was a hypothesis too (p = 1),
    so the family is every series scanned, not only those the detector flagged.
    """
    from orchestrator.analysis.stats import benjamini_hochberg

    tested = [i for i, c in enumerate(confirmations) if c.p_value is not None]
    adjusted = benjamini_hochberg([confirmations[i].p_value for i in tested] + [1.0] * quiet)
    out = list(confirmations)
    for i, p in zip(tested, adjusted, strict=False):
        c = confirmations[i]
        excludes = c.ci_low is None or c.ci_low > 1.0 or c.ci_high < 1.0
        out[i] = replace(c, p_adjusted=p, confirmed=bool(p < fdr and excludes))
    return out


# --- environment --------------------------------------------------------------------------


def environment_difference(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """Return "field a → b" for each ``ENVIRONMENT_FIELDS`` entry whose values differ across a change."""
    out = []
    for name in ENVIRONMENT_FIELDS:
        old = sorted({str(e.get(name)) for e in before if e.get(name) is not None})
        new = sorted({str(e.get(name)) for e in after if e.get(name) is not None})
        if old and new and old != new:
            out.append(f"{name} {', '.join(old)} → {', '.join(new)}")
    return tuple(out)


# --- shape and the gate -------------------------------------------------------------------


def _grouped(series: Series, changes: list[Change]) -> list[Change]:
    """Return the changes with neighbouring confirmed ones of one kind grouped (shape, group id)."""
    values = np.array([p.value for p in series.points])
    out = list(changes)
    i = 0
    while i < len(out):
        j = i
        if out[i].confirmed and out[i].shape != "gradual":
            while (j + 1 < len(out) and out[j + 1].confirmed and out[j + 1].kind == out[i].kind
                   and out[j + 1].shape != "gradual" and out[j + 1].detection.start == out[j].index):
                j += 1
        members = out[i:j + 1]
        if members[0].shape == "gradual" or len(members) >= 3:
            shape = "gradual"
        elif len(members) == 2:
            middle = values[members[0].index:members[1].index]
            rising = 1.0 if members[0].detection.median_after > members[0].detection.median_before else -1.0
            shape = "gradual" if trends(middle, rising) else "two-step"
        else:
            shape = "step"
        out[i:j + 1] = [replace(c, shape=shape, group=members[0].id) for c in members]
        i = j + 1
    return out


def open_regressions(history: SeriesHistory, threshold: float) -> list[Regression]:
    """Return the series' confirmed, unacknowledged regressions still worse than ``threshold`` now.

    Now is the latest segment (after the last change point): a later change that undid the
    regression (or most of it) closes it. A group counts as acknowledged when any step is.
    """
    series = history.series
    better = series.key.better
    if better is None or not history.changes:
        return []
    values = np.array([p.value for p in series.points])
    latest = float(np.median(values[history.changes[-1].index:]))
    groups: dict[str, list[Change]] = {}
    for c in history.changes:
        if c.confirmed and c.kind == "regression":
            groups.setdefault(c.group, []).append(c)
    out = []
    for steps in groups.values():
        if any(c.ack for c in steps):
            continue
        before = steps[0].level_before
        if before == 0:
            continue
        now = latest / before
        worse = (1.0 - now) if better == "higher" else (now - 1.0)
        total = math.prod(c.ratio or 1.0 for c in steps)
        step_worse = (1.0 - total) if better == "higher" else (total - 1.0)
        if worse > threshold and step_worse > threshold:
            out.append(Regression(history, tuple(steps), now))
    return out


# --- the whole history --------------------------------------------------------------------


def _noise_cv(scale: float, values: np.ndarray) -> float | None:
    center = float(np.median(values)) if values.size else 0.0
    return None if center == 0 else scale / abs(center)


def analyze(series: Sequence[Series],
            rounds: Callable[[Sequence[tuple[Series, Sequence[str]]]], Mapping[Any, Invocations]],
            key: Callable[[Series, str], Any], settings: HistorySettings, *,
            environments: Mapping[str, Mapping[str, Any]] | None = None,
            between: Callable[[str, str], int | None] | None = None,
            acks: Sequence[Ack] = (), memo: Memo | None = None) -> History:
    """Detect, confirm (Benjamini-Hochberg across all series), group and annotate every change.

    Args:
        series: the series to scan together.
        rounds: given (series, run ids) pairs, those runs' rounds of those series by invocation,
            keyed by ``key``; called once, with every run any candidate needs.
        key: the key of a run's rounds of a series in what ``rounds`` returns.
        environments: per run id, its environment (``ENVIRONMENT_FIELDS``).
        between: commits between two commits never benchmarked, or None when unknown.
        acks: acknowledgements; each marks the change with its id.
        memo: candidates and confirmations of earlier calls (both deterministic): a series whose
            values, and a candidate whose runs, are unchanged are not detected or confirmed again.
    """
    found = [(s, *_candidates_memo(s, settings, memo)) for s in series]
    pending = [(s, c) for s, cands, _ in found for c in cands]
    needed: dict[str, tuple[Series, set[str]]] = {}
    for s, c in pending:  # only candidates no earlier call confirmed need their runs' rounds
        runs = [tuple(r for i in side for r in s.points[i].run_ids) for side in (c.before, c.after)]
        if memo is None or memo.get("confirmations", _digest(s.id, runs, c.rho, c.splits, settings.confidence,
                                                              settings.seed)) is None:
            needed.setdefault(s.id, (s, set()))[1].update(r for side in runs for r in side)
    stored = rounds([(s, sorted(ids)) for s, ids in needed.values()]) if needed else {}
    tested = [_confirm_memo(s, c, stored, lambda run_id, s=s: key(s, run_id), settings, memo) for s, c in pending]
    quiet = sum(1 for _, cands, _ in found if not cands)
    judged = iter(judge(tested, settings.fdr, quiet=quiet))
    by_ack = {a.change_id: a for a in acks}
    envs = environments or {}
    out = []
    for s, cands, result in found:
        values = np.array([p.value for p in s.points])
        changes = []
        for cand in cands:
            conf, cp = next(judged), cand.cp
            good, bad = s.points[cand.good_index], s.points[cp.index]
            cid = change_id(s, bad)
            between_points = cp.index - cand.good_index - 1
            commits = between(good.commit, bad.commit) if between and good.commit and bad.commit else None
            change = Change(
                id=cid, index=cp.index, last_good=good, first_bad=bad, good_index=cand.good_index,
                kind=_kind(s.key.better, conf.ratio if conf.ratio is not None else
                           (cp.median_after / cp.median_before if cp.median_before else None)),
                shift=cp.median_after - cp.median_before,
                level_before=float(np.median(values[cand.before.start:cand.before.stop])),
                detection=cp, confirmation=conf,
                environment=environment_difference([envs.get(r, {}) for r in good.run_ids],
                                                   [envs.get(r, {}) for r in bad.run_ids]),
                unbenchmarked=None if commits is None else max(commits - between_points, 0),
                shape="gradual" if cand.gradual else "step", group=cid, ack=by_ack.get(cid))
            changes.append(change)
        out.append(SeriesHistory(s, tuple(_grouped(s, changes)), _noise_cv(result.scale, values),
                                 result.autocorrelation))
    return History(tuple(out), settings, len(tested) + quiet)
