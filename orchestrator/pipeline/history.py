"""What ``history`` does: index the runs, build the series, order points by git, detect, confirm, annotate.

    index      store.history_index: each run's figures, code, host and environment, read once
    series     analysis.series.build_series: points per commit or label, in git or time order
    analyze    analysis.regressions.analyze: detect, confirm on raw rounds grouped by run and
               invocation (Benjamini-Hochberg across every series scanned), group, environment
               differences, bisect ranges, acks

Everything is read through ``store.reader.Dataset`` and written through the store (the index
and memo as caches, acknowledgements as ``acks`` files), so a bucket serves as a folder does.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from orchestrator.analysis.regressions import (
    Ack,
    Change,
    History,
    Invocations,
    SeriesHistory,
    analyze,
)
from orchestrator.analysis.series import Series, build_series, host_fingerprint
from orchestrator.pipeline.provenance import Repository
from orchestrator.records import COMPARE_KEY
from orchestrator.settings import HISTORY, HistorySettings
from orchestrator.store import history_index, queries
from orchestrator.store.location import describe_failure
from orchestrator.store.reader import Dataset
from workloads.errors import UserError

if TYPE_CHECKING:
    import os

    from orchestrator.store.location import Location


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """Which series to scan: each field None keeps all."""

    workload: str | None = None
    metric: str | None = None
    host: str | None = None
    """A part of the host in words, or the start of its fingerprint."""
    since: datetime | None = None
    """Only points whose first run started at or after this instant."""
    series: str | None = None
    """The start of a series id."""


@dataclass(frozen=True, slots=True)
class HistoryOutcome:
    """A scanned history and how it was read."""

    history: History
    order: str
    """How points were ordered, in words (git first-parent of which repository, or time)."""
    runs: int
    """Runs read (from the index and fresh)."""
    indexed: int
    """Runs read from their own files this time (new or changed since the last call)."""
    skipped: tuple[str, ...] = ()


def _environment(run: Mapping[str, Any], head: Mapping[str, Any] | None) -> str:
    """Return a run's environment as JSON: the head node's kernel, microcode, governor and versions."""
    head = head or {}
    try:
        versions = json.loads(head.get("versions") or "null") or {}
    except ValueError:
        versions = {}
    return json.dumps({"kernel": head.get("kernel"), "microcode": head.get("microcode"),
                       "governor": head.get("governor"), "python": run.get("python_version") or versions.get("python"),
                       "ray": run.get("ray_version") or versions.get("ray"), "numpy": versions.get("numpy")})


def _index_rows(dataset: Dataset, signatures: Mapping[str, str]) -> list[dict[str, Any]]:
    """Return the index rows of the runs ``dataset`` holds (a run still running is left out)."""
    dataset.connect(("runs", "nodes", "trials"))  # the three views at once: each reconnect reads every run row
    runs = {r["run_id"]: r for r in queries.run_index(dataset) if r["status"] != "running"}
    nodes: dict[str, list[dict[str, Any]]] = {}
    for n in queries.history_nodes(dataset):
        nodes.setdefault(n["run_id"], []).append(n)
    figures: dict[str, list[dict[str, Any]]] = {}
    for f in queries.history_figures(dataset):
        figures.setdefault(f["run_id"], []).append(f)
    out = []
    for run_id, run in runs.items():
        host = host_fingerprint(nodes.get(run_id, []))
        common = {"run_id": run_id, "signature": signatures.get(run_id), "started_at": run["started_at"],
                  "status": run["status"], "commit": run["git_commit"], "label": run["label"],
                  "dirty": run["git_dirty"], "fingerprint": host.fingerprint, "host": host.description,
                  "environment": _environment(run, (nodes.get(run_id) or [None])[0])}
        out += [{**common, **f} for f in figures.get(run_id, [])] or [common]
    return out


def indexed_rows(dataset: Dataset) -> tuple[list[dict[str, Any]], int, int, tuple[str, ...]]:
    """Return the history rows of every run, refreshing the index with new or changed runs.

    Returns (rows, runs, runs read from their files, files skipped).

    Raises:
        UserError: the dataset cannot be listed.
    """
    location = dataset.location
    try:
        signatures = dataset.catalog.signatures()
    except OSError as exc:
        raise UserError(f"The results in {location.shown!r} cannot be listed ({describe_failure(exc)}); check the "
                        "storage, or pass another --results.") from None
    index = history_index.read_index(location)
    known = dict(zip(index["run_id"].to_pylist(), index["signature"].to_pylist()))
    stale = sorted(r for r, sig in signatures.items() if known.get(r) != sig)
    rows = [r for r in index.to_pylist() if signatures.get(r["run_id"]) == r["signature"]]
    skipped: tuple[str, ...] = ()
    if stale:
        # A few runs: their own files; most of them (a first call): every run's, listed once per table.
        if len(stale) * 2 < len(signatures):
            dataset = Dataset(location, runs=stale)
        fresh = _index_rows(dataset, signatures)
        skipped = tuple(dataset.skipped)
        rows += fresh
        if fresh:
            history_index.append_index(location, pa.Table.from_pylist(fresh, history_index.INDEX_SCHEMA),
                                       pa.Table.from_pylist(rows, history_index.INDEX_SCHEMA))
    return rows, len(signatures), len(stale), skipped


def _matches(row: Mapping[str, Any], filters: HistoryFilter) -> bool:
    if row.get("trial_id") is None:
        return False
    if filters.workload is not None and row["workload"] != filters.workload:
        return False
    if filters.metric is not None and row["metric"] != filters.metric:
        return False
    if filters.host is not None and not (filters.host.lower() in (row["host"] or "").lower()
                                         or (row["fingerprint"] or "").startswith(filters.host)):
        return False
    return filters.since is None or (row["started_at"] is not None and row["started_at"] >= filters.since)


def rounds_key(series: Series, run_id: str) -> tuple:
    """Return the key of a run's rounds of ``series`` (run id, ``COMPARE_KEY`` values, metric)."""
    return (run_id, *(getattr(series.key, k) for k in COMPARE_KEY), series.key.metric)


def stored_rounds(location: Location, run_ids: Sequence[str], workloads: Sequence[str]) -> dict[tuple, Invocations]:
    """Return the complete rounds of ``workloads``' ok trials in ``run_ids``, grouped by invocation.

    Keyed by (run id, ``COMPARE_KEY`` values, metric); a round some worker did not report is left out.
    """
    by_key: dict[tuple, dict[int, list[float]]] = {}
    for row in queries.round_units(Dataset(location, runs=run_ids), run_ids, workloads):
        if row["reported"] == row["expected"]:
            key = (row["run_id"], *(row[k] for k in COMPARE_KEY), row["metric"])
            by_key.setdefault(key, {}).setdefault(row["invocation"], []).append(row["value"])
    return {k: [v for _, v in sorted(inv.items())] for k, inv in by_key.items()}


RoundsReader = Callable[[Sequence[tuple[Series, Sequence[str]]]], dict[tuple, Invocations]]
"""What ``analyze`` calls once with every (series, run ids) it needs rounds of."""


def _rounds_reader(location: Location) -> RoundsReader:
    """Return the reader of raw rounds ``analyze`` calls once with every run it needs."""
    def read(needed: Sequence[tuple[Series, Sequence[str]]]) -> dict[tuple, Invocations]:
        run_ids = sorted({r for _, ids in needed for r in ids})
        return stored_rounds(location, run_ids, sorted({s.key.workload for s, _ in needed}))
    return read


def _acks(dataset: Dataset) -> list[Ack]:
    return [Ack(a["change_id"], a["reason"], a["acked_at"], a["acked_by"]) for a in queries.acks(dataset)]


class _Memo:
    """The memo ``analyze`` reads and adds to, kept in the history folder between calls."""

    def __init__(self, location: Location) -> None:
        from importlib.util import find_spec

        self.location = location
        self.data = history_index.read_memo(location)
        # Entries hold for this code only: any change to the detector or the tests starts afresh.
        code = b"".join(Path(find_spec(f"orchestrator.analysis.{m}").origin).read_bytes()
                        for m in ("candidates", "changepoints", "hierarchical", "regressions"))
        self.salt = hashlib.sha256(code).hexdigest()[:12]
        self.added = 0

    def get(self, kind: str, key: str) -> Any:
        return self.data.get(kind, {}).get(f"{self.salt}:{key}")

    def put(self, kind: str, key: str, value: Any) -> None:
        self.data.setdefault(kind, {})[f"{self.salt}:{key}"] = value
        self.added += 1

    def save(self) -> None:
        if self.added:
            history_index.write_memo(self.location, self.data)


def run_history(results: str | os.PathLike | Location, filters: HistoryFilter = HistoryFilter(),
                settings: HistorySettings = HISTORY, repo: Path | None = None) -> HistoryOutcome:
    """Return the history of every series ``filters`` keeps, scanned together.

    Raises:
        UserError: the results folder is missing, or ``filters.series`` names no series or several.
    """
    dataset = Dataset(results)
    rows, runs, indexed, skipped = indexed_rows(dataset)
    rows = [r for r in rows if _matches(r, filters)]
    repository = Repository(repo if repo is not None else Path.cwd())
    usable = repository.available
    commits = {r["commit"] for r in rows if r.get("commit")}
    rank = repository.first_parent_rank(commits) if usable and commits else {}
    series = build_series(rows, rank, confidence=settings.confidence, seed=settings.seed)
    if filters.series is not None:
        series = [s for s in series if s.id.startswith(filters.series)]
        if len(series) != 1:
            what = "no series" if not series else f"{len(series)} series"
            raise UserError(f"Series {filters.series!r} matches {what}; `topobench history` lists the series "
                            "with their ids (give more digits, or check --results and the filters).")
    environments = {}
    for r in rows:
        if r["run_id"] not in environments:
            environments[r["run_id"]] = json.loads(r.get("environment") or "{}")
    memo = _Memo(dataset.location)
    history = analyze(series, _rounds_reader(dataset.location), rounds_key, settings, environments=environments,
                      between=repository.between if usable else None, acks=_acks(dataset), memo=memo)
    memo.save()
    order = (f"git first-parent order of {repository.path}" if rank else
             "time order" + ("" if usable else f" ({repository.path} is not a git checkout: pass --repo)"))
    return HistoryOutcome(history, order, runs, indexed, skipped)


def find_change(history: History, change_id: str) -> tuple[SeriesHistory, Change]:
    """Return the series and change whose id starts with ``change_id``.

    Raises:
        UserError: no change or several match.
    """
    found = [(s, c) for s, c in history.changes() if c.id.startswith(change_id.strip().lower())]
    if len(found) != 1 or not change_id.strip():
        what = "no change" if not found else f"{len(found)} changes"
        raise UserError(f"Change {change_id!r} matches {what} in this history; `topobench history` lists the "
                        "changes with their ids (give the whole id, and the same --results).")
    return found[0]


def acknowledge(results: str | os.PathLike | Location, change_id: str, reason: str,
                settings: HistorySettings = HISTORY, repo: Path | None = None) -> tuple[SeriesHistory, Change]:
    """Store that a change is expected (an ``acks`` row); return the series and the change.

    Raises:
        UserError: an empty reason, or an id that names no change (or several).
        StoreError: the acknowledgement could not be written.
    """
    from orchestrator.store.writer import append_ack

    if not reason.strip():
        raise UserError("--reason is empty; say why the change is expected, e.g. --reason 'new default "
                        "buffer size, see #123'.")
    location = Dataset(results).location
    outcome = run_history(location, settings=settings, repo=repo)
    series, change = find_change(outcome.history, change_id)
    append_ack(location, {
        "change_id": change.id, "series_id": series.series.id, "series": series.series.key.describe(),
        "first_bad": change.first_bad.name, "reason": reason.strip(),
        "acked_at": datetime.now(timezone.utc), "acked_by": _user()})
    return series, change


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


@dataclass(frozen=True, slots=True)
class ExportInputs:
    """What an export serializes: the runs, each series' pooled figures and rounds, and run facts."""

    run_ids: tuple[str, ...]
    benchmarks: tuple[Any, ...]
    """``analysis.series.Benchmark`` per series of the runs."""
    metadata: dict[str, str]


def export_inputs(results: str | os.PathLike | Location, refs: Sequence[str],
                  settings: HistorySettings = HISTORY) -> ExportInputs:
    """Return the series of the runs ``refs`` name, pooled, with their rounds.

    Raises:
        UserError: no run named, a run that does not exist, or runs with nothing stored to export.
    """
    from orchestrator.analysis.series import benchmarks, series_key

    if not refs:
        raise UserError("Name at least one run to export: a run id, latest or latest~N.")
    dataset = Dataset(results)
    run_ids = tuple(dict.fromkeys(dataset.resolve(r) for r in refs))
    rows = [r for r in indexed_rows(dataset)[0] if r["run_id"] in run_ids and r.get("trial_id")]
    if not rows:
        raise UserError(f"Run(s) {', '.join(run_ids)} have no finished trial to export (a run still running is "
                        "exported once it ends); `topobench query \"SELECT run_id, status FROM runs\"` lists them.")
    stored = stored_rounds(dataset.location, run_ids, sorted({r["workload"] for r in rows}))
    rounds = {}
    for r in rows:
        found = stored.get((r["run_id"], *(r[k] for k in COMPARE_KEY), r["metric"]))
        if found:
            rounds[(r["run_id"], series_key(r))] = found
    hosts = sorted({r["host"] for r in rows})
    commits = sorted({r["commit"] for r in rows if r["commit"]})
    metadata = {"topobench_runs": ",".join(run_ids), "topobench_commits": ",".join(commits),
                "topobench_host": hosts[0] if len(hosts) == 1 else f"{len(hosts)} kinds of host"}
    return ExportInputs(run_ids, tuple(benchmarks(rows, rounds, confidence=settings.confidence, seed=settings.seed)),
                        metadata)
