"""Which earlier runs may lend ``compare`` a prior: runs of the same code on the same machine.

A prior (``hierarchical.PriorVariance``) is how much run figures vary between runs measured
elsewhere; it is only that when those runs measured the same code the same way, or it mixes a
real change into the noise. So a history is taken from complete runs with BASE's commit (from a
clean checkout, or stated) and label, on BASE's machine, started before BASE's newest run, never
the runs compared; per configuration only the runs that have it count (``compare_runs``).
Rows are those of ``store.queries.run_index``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workloads.errors import UserError

Row = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PriorRuns:
    """The runs a prior comes from, and a sentence saying which or why none."""

    run_ids: tuple[str, ...]
    note: str


STATED_SOURCES = ("--commit", "GITHUB_SHA", "CI_COMMIT_SHA")
"""``runs.commit_source`` values that state a commit rather than read a checkout (``pipeline.provenance``)."""


def code_of(row: Row) -> tuple[str | None, str | None]:
    """Return (commit, label) of a run: what says which code it measured."""
    return row.get("git_commit"), row.get("label")


def known_code(row: Row) -> bool:
    """Return whether a run's label, or its commit from a clean checkout or stated, names its code.

    A run written before labels (no ``commit_source``) stored its working folder's commit,
    which need not be the benchmarked code's, and no word on uncommitted changes: not known.
    """
    if row.get("label"):
        return True
    return bool(row.get("git_commit")) and (row.get("git_dirty") is False
                                             or row.get("commit_source") in STATED_SOURCES)


def _describe(commit: str | None, label: str | None) -> str:
    parts = ([f"commit {commit[:12]}"] if commit else []) + ([f"label {label!r}"] if label else [])
    return " and ".join(parts)


def auto_history(index: Sequence[Row], base: Sequence[str], new: Sequence[str], limit: int) -> PriorRuns:
    """Return up to ``limit`` runs of BASE's code and machine before BASE's newest, newest first.

    None when BASE's runs disagree on their code or machine, carry no commit and no label, or
    have uncommitted changes (then no earlier run can be known to be the same code).
    """
    by_id = {r["run_id"]: r for r in index}
    rows = [by_id[b] for b in base if b in by_id]
    codes = {code_of(r) for r in rows}
    hosts = {r.get("host") for r in rows}
    if not rows or len(codes) != 1 or len(hosts) != 1:
        return PriorRuns((), "no prior: the BASE runs differ in commit, label or machine")
    (commit, label), (host,) = codes.pop(), hosts
    if commit is None and label is None:
        return PriorRuns((), "no prior: the BASE runs carry no commit and no label, so no earlier run is known to "
                           "measure the same code (label runs with --label, or pass --prior)")
    if not all(known_code(r) for r in rows):
        return PriorRuns((), "no prior: the BASE runs had uncommitted changes or come from before labels, so their "
                           "commit does not name their code (label runs with --label, or pass --prior)")
    newest = max(r["started_at"] for r in rows)
    compared = set(base) | set(new)
    found = [r for r in index if r["status"] == "complete" and r["run_id"] not in compared
             and code_of(r) == (commit, label) and r.get("host") == host and known_code(r)
             and r["started_at"] is not None and r["started_at"] < newest]
    chosen = tuple(r["run_id"] for r in found[::-1][:limit])
    if len(chosen) < 2:
        return PriorRuns((), f"no prior: fewer than 2 earlier complete runs of {_describe(commit, label)} on "
                           f"{host or 'this machine'}")
    return PriorRuns(chosen, f"prior from {len(chosen)} earlier run(s) of {_describe(commit, label)} on "
                           f"{host or 'one machine'}: {', '.join(chosen)}")


def given_history(index: Sequence[Row], prior: Sequence[str], compared: Sequence[str]) -> PriorRuns:
    """Return the runs ``--prior`` selected, after checking they measured one code on one machine.

    Raises:
        UserError: they span several commits, labels or machines, or include a compared run.
    """
    by_id = {r["run_id"]: r for r in index}
    rows = [by_id[p] for p in prior if p in by_id]
    overlap = sorted(set(prior) & set(compared))
    if overlap:
        raise UserError(f"--prior includes run {overlap[0]}, which is compared; a prior comes from other runs "
                        "(e.g. --prior latest~10..latest~3 when comparing latest~1 and latest).")
    codes = sorted({code_of(r) for r in rows}, key=str)
    if len(codes) > 1:
        named = "; ".join(_describe(c, lab) or "unknown code" for c, lab in codes)
        raise UserError(f"--prior runs measured different code ({named}); a prior of runs across a change "
                        "mixes the change into the noise: select runs of one commit, e.g. --prior commit:SHA.")
    hosts = sorted({str(r.get("host")) for r in rows})
    if len(hosts) > 1:
        raise UserError(f"--prior runs come from {len(hosts)} machines ({'; '.join(hosts)}); select runs of one.")
    code = _describe(*codes[0]) if codes else ""
    return PriorRuns(tuple(prior), f"prior from {len(prior)} run(s) given by --prior"
                                 f"{' of ' + code if code else ' (no commit or label: their code is not known)'}: "
                                 f"{', '.join(prior)}")


def choose_history(index: Sequence[Row], prior: str, base: Sequence[str], new: Sequence[str], limit: int,
                   select: Callable[[str], Sequence[str]]) -> PriorRuns:
    """Return the history ``--prior`` names: "auto" (``auto_history``), "none", or a run selector's runs.

    Raises:
        UserError: the selected runs are not one code on one machine (``given_history``).
    """
    if prior == "none":
        return PriorRuns((), "")
    if prior == "auto":
        return auto_history(index, base, new, limit)
    return given_history(index, select(prior), (*base, *new))
