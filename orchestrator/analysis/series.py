"""A benchmark series over commits: what makes two runs' figures one series, and its points.

A series is a machine and a measurement held fixed: a host fingerprint of stable fields only
(CPU model, family/model/stepping, architecture, packages × cores × SMT, NUMA and L3 layout,
memory rounded to GiB; never MHz, bogomips, kernel or microcode, which change without the
machine changing), the workload and the version of its code, its parameters, the placement
shape (policy, nodes, workers, threads per worker, mode), the metric, its unit and direction.

A point is one code version: a commit, or a label, with every run of it pooled (their figures
are kept, never averaged away: the point's value is their median). Runs with neither are a
point each. Points are ordered by git's first-parent order when every commit is known to it,
else by the time their first run started (labels in the order they first appeared).
Pure: rows in (``store.queries`` through the history index), records out.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

Row = Mapping[str, Any]

SERIES_KEY = ("fingerprint", "workload", "workload_version", "params", "placement", "nodes", "workers",
              "threads_per_worker", "mode", "metric", "unit", "higher_is_better")
"""The columns of a history row that make its figure part of one series."""

GIB = 2**30


@dataclass(frozen=True, slots=True)
class Host:
    """A host fingerprint: its id (12 hex digits) and the stable fields it hashes, in words."""

    fingerprint: str
    description: str


def _layout(topology_json: str | None) -> dict[str, Any]:
    """Return the stable layout of a stored topology: packages, cores, SMT, NUMA nodes and L3s."""
    try:
        topo = json.loads(topology_json or "{}")
    except ValueError:
        topo = {}
    cores = topo.get("cores") or []
    threads = max((len(c.get("cpus") or ()) for c in cores), default=0)
    l3 = sorted(d.get("size_bytes") or 0 for d in topo.get("l3_domains") or ())
    return {"packages": len(topo.get("packages") or ()), "cores": len(cores), "smt": threads,
            "numa": len(topo.get("numa_nodes") or ()), "l3": l3}


def node_identity(node: Row) -> dict[str, Any]:
    """Return the stable fields of one ``nodes`` row (what its host fingerprint hashes)."""
    memory = node.get("memory_total_bytes")
    return {"cpu_model": node.get("cpu_model"), "cpu_family": node.get("cpu_family"),
            "cpu_model_number": node.get("cpu_model_number"), "cpu_stepping": node.get("cpu_stepping"),
            "arch": node.get("arch"), "memory_gib": None if memory is None else round(memory / GIB),
            **_layout(node.get("topology"))}


def _describe_identity(ident: Mapping[str, Any]) -> str:
    cpu = ident["cpu_model"] or "unknown CPU"
    silicon = " ".join(f"{label} {ident[key]}" for key, label in
                       (("cpu_family", "family"), ("cpu_model_number", "model"), ("cpu_stepping", "stepping"))
                       if ident[key] is not None)
    l3 = ident["l3"]
    cache = f"{len(l3)}×{l3[-1] // 2**20} MiB L3" if l3 and len(set(l3)) == 1 else (
        "L3 " + "+".join(f"{s // 2**20}" for s in l3) + " MiB" if l3 else "no L3 known")
    parts = [cpu + (f" ({silicon})" if silicon else ""), ident["arch"],
             f"{ident['packages']}×{ident['cores'] // max(ident['packages'], 1)} cores SMT{ident['smt']}",
             f"{ident['numa']} NUMA", cache,
             None if ident["memory_gib"] is None else f"{ident['memory_gib']} GiB"]
    return ", ".join(p for p in parts if p)


def host_fingerprint(nodes: Sequence[Row]) -> Host:
    """Return the fingerprint of the hosts behind a run's ``nodes`` rows (several kinds: all of them).

    Nodes of one machine (one ``host_id``) count once; machines of one kind share a fingerprint,
    so a pool of identical CI runners is one series.
    """
    kinds: dict[str, str] = {}
    seen_hosts: set[Any] = set()
    for node in nodes:
        host = node.get("host_id") or node.get("hostname")
        if host in seen_hosts:
            continue
        seen_hosts.add(host)
        ident = node_identity(node)
        kinds.setdefault(json.dumps(ident, sort_keys=True), _describe_identity(ident))
    if not kinds:
        return Host("unknown", "unknown host (no nodes rows)")
    text = "|".join(sorted(kinds))
    return Host(hashlib.sha256(text.encode()).hexdigest()[:12], " + ".join(kinds[k] for k in sorted(kinds)))


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """What holds one series together (``SERIES_KEY``), with the host in words."""

    fingerprint: str
    workload: str
    workload_version: str | None
    params: str
    placement: str
    nodes: int
    workers: int
    threads_per_worker: int
    mode: str
    metric: str
    unit: str
    higher_is_better: bool | None
    host: str
    """The fingerprint's fields in words (not part of the identity)."""

    @property
    def id(self) -> str:
        """Return the series' id: 10 hex digits of a hash of ``SERIES_KEY``."""
        text = json.dumps([getattr(self, k) for k in SERIES_KEY], default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    @property
    def better(self) -> str | None:
        """Return "higher", "lower" or None (descriptive: no regression verdict)."""
        return None if self.higher_is_better is None else ("higher" if self.higher_is_better else "lower")

    def describe(self) -> str:
        """Return the series in words: what, how it was laid out, and where."""
        try:
            params = " ".join(f"{k}={v}" for k, v in json.loads(self.params).items())
        except (ValueError, AttributeError):
            params = self.params
        direction = {"higher": "higher is better", "lower": "lower is better"}.get(self.better, "descriptive")
        shape = (f"{self.workers} worker(s) × {self.threads_per_worker} thread(s) on {self.nodes} node(s), "
                 f"{self.placement}, {self.mode}")
        version = f" (code {self.workload_version})" if self.workload_version else ""
        return (f"{self.workload}{version} {self.metric} [{self.unit or 'no unit'}, {direction}]"
                f"{' ' + params if params else ''}; {shape}; on {self.host}")


def series_key(row: Row) -> SeriesKey:
    """Return the series of one history row."""
    return SeriesKey(**{k: row.get(k) for k in SERIES_KEY}, host=row.get("host") or "unknown host")


@dataclass(frozen=True, slots=True)
class Point:
    """One code version of a series: every run of one commit or label, pooled."""

    name: str
    """How it is shown: the commit (12 digits), the label, both, or the run id."""
    commit: str | None
    label: str | None
    run_ids: tuple[str, ...]
    """Its runs, oldest first."""
    figures: tuple[float, ...]
    """Each run's figure (its trial median), as ``run_ids``."""
    value: float
    """The median of ``figures``: the point's robust estimate."""
    ci_low: float | None
    """CI of the value: one run's own CI; over runs from 3 (Student t) and 6 (bootstrap)."""
    ci_high: float | None
    started_at: datetime | None
    """When its first run started."""

    @property
    def cv(self) -> float | None:
        """Return the coefficient of variation of the runs' figures; None below 2 runs."""
        if len(self.figures) < 2 or self.value == 0:
            return None
        return float(np.std(self.figures, ddof=1) / abs(np.mean(self.figures)))


@dataclass(frozen=True, slots=True)
class Series:
    """A series and its points in order."""

    key: SeriesKey
    points: tuple[Point, ...]
    order: str
    """How the points are ordered: git first-parent | time."""

    @property
    def id(self) -> str:
        """Return the series' id."""
        return self.key.id


def point_key(row: Row) -> tuple[str, str | None, str | None]:
    """Return what makes runs one point: (kind, commit, label); a run of neither is its own point.

    A checkout with uncommitted changes is not its commit's code: it is a point of its own run.
    """
    commit, label = row.get("commit"), row.get("label")
    if row.get("dirty") or (commit is None and label is None):
        return ("run", row["run_id"], None)
    return ("code", commit, label)


def _point_name(kind: str, commit: str | None, label: str | None) -> str:
    if kind == "run":
        return str(commit)
    if commit and label:
        return f"{commit[:12]} ({label})"
    return commit[:12] if commit else str(label)


def _point_ci(rows: Sequence[Row], figures: np.ndarray, confidence: float,
              seed: int) -> tuple[float | None, float | None]:
    """Return a point's CI: its one run's stored CI, none at 2 runs, over runs from 3."""
    from orchestrator.analysis.invocations import MIN_INVOCATIONS_FOR_CI, invocation_ci

    if len(rows) == 1:
        return rows[0].get("ci_low"), rows[0].get("ci_high")
    if len(rows) < MIN_INVOCATIONS_FOR_CI:
        return None, None
    low, high, _ = invocation_ci(figures, confidence=confidence, seed=seed)
    return float(low), float(high)


def pooled(rows: Sequence[Row], confidence: float = 0.95, seed: int = 0) -> tuple[float, float | None, float | None]:
    """Return the median of runs' figures (``median`` of each row) and its CI (one run: its own; none at 2)."""
    figures = np.array([r["median"] for r in rows], dtype=float)
    low, high = _point_ci(rows, figures, confidence, seed)
    return float(np.median(figures)), low, high


@dataclass(frozen=True, slots=True)
class Benchmark:
    """One series' figures in a set of runs pooled, with their rounds: what an export serializes."""

    key: SeriesKey
    run_ids: tuple[str, ...]
    value: float
    """Median of the runs' figures."""
    ci_low: float | None
    ci_high: float | None
    rounds: tuple[tuple[str, tuple[float, ...]], ...]
    """(run id, per-round units) of each run's invocations, oldest run first."""

    @property
    def name(self) -> str:
        """Return a name unique among a run's benchmarks: workload, parameters, shape, metric."""
        k = self.key
        try:
            params = " ".join(f"{a}={b}" for a, b in json.loads(k.params).items())
        except (ValueError, AttributeError):
            params = k.params
        shape = f"{k.workers}w×{k.threads_per_worker}t×{k.nodes}n {k.placement} {k.mode}"
        return " ".join(p for p in (k.workload, params, f"[{shape}]", k.metric) if p)


def benchmarks(rows: Iterable[Row], rounds: Mapping[tuple[str, SeriesKey], Sequence[Sequence[float]]], *,
               confidence: float = 0.95, seed: int = 0) -> list[Benchmark]:
    """Return each series among ``rows`` with every given run pooled (whatever their commits).

    Args:
        rows: history rows (one per run, configuration and metric).
        rounds: per (run id, series key), the run's per-round units grouped by invocation.
    """
    grouped: dict[SeriesKey, list[Row]] = {}
    for row in rows:
        if row.get("median") is not None and math.isfinite(row["median"]):
            grouped.setdefault(series_key(row), []).append(row)
    out = []
    for key, members in grouped.items():
        members = sorted(members, key=lambda r: (r.get("started_at") or datetime.min, r["run_id"]))
        value, low, high = pooled(members, confidence, seed)
        runs = tuple(r["run_id"] for r in members)
        out.append(Benchmark(key, runs, value, low, high,
                             tuple((r, tuple(float(v) for v in inv)) for r in runs for inv in rounds.get((r, key), ()))))
    return sorted(out, key=lambda b: b.name)


def _order_key(commit_rank: Mapping[str, int] | None, kind: str, commit: str | None,
               first: datetime | None) -> tuple:
    """Return how a point sorts: by git rank when known, else by time."""
    rank = commit_rank.get(commit) if commit_rank and kind == "code" and commit else None
    return (rank if rank is not None else math.inf, first or datetime.min, commit or "")


def build_series(rows: Iterable[Row], commit_rank: Mapping[str, int] | None = None, *,
                 confidence: float = 0.95, seed: int = 0) -> list[Series]:
    """Return every series among history rows with its points in order.

    Args:
        rows: one per run, configuration and metric (``store.queries.history_figures`` plus
            the run's ``commit``, ``label``, ``dirty``, ``started_at``, ``fingerprint``, ``host``).
        commit_rank: git first-parent position of each known commit (older first); a series
            whose every commit has one is ordered by it, any other by time.
        confidence, seed: of each point's CI over runs.
    """
    grouped: dict[SeriesKey, dict[tuple, list[Row]]] = {}
    for row in rows:
        if row.get("median") is None or not math.isfinite(row["median"]):
            continue
        grouped.setdefault(series_key(row), {}).setdefault(point_key(row), []).append(row)
    out = []
    for key, by_point in grouped.items():
        commits = [c for (kind, c, _) in by_point if kind == "code" and c]
        by_git = bool(commit_rank) and all(c in commit_rank for c in commits) and len(commits) == len(by_point)
        points = []
        for (kind, commit, label), members in by_point.items():
            if len(members) == 1:  # most points: one run, its figure and CI as stored
                r = members[0]
                points.append(Point(_point_name(kind, commit, label), commit if kind == "code" else None, label,
                                    (r["run_id"],), (float(r["median"]),), float(r["median"]), r.get("ci_low"),
                                    r.get("ci_high"), r.get("started_at")))
                continue
            members = sorted(members, key=lambda r: (r.get("started_at") or datetime.min, r["run_id"]))
            figures = np.array([r["median"] for r in members], dtype=float)
            low, high = _point_ci(members, figures, confidence, seed)
            points.append(Point(_point_name(kind, commit, label), commit if kind == "code" else None, label,
                                tuple(r["run_id"] for r in members), tuple(float(f) for f in figures),
                                float(np.median(figures)), low, high, members[0].get("started_at")))
        rank = commit_rank if by_git else None
        points.sort(key=lambda p: _order_key(rank, "code" if p.commit else "run", p.commit, p.started_at))
        out.append(Series(key, tuple(points), "git first-parent" if by_git else "time"))
    return sorted(out, key=lambda s: (s.key.workload, s.key.metric, s.key.params, s.key.host, s.id))
