"""Assemble what is stored for one trial from what its workers returned: pure functions, in two steps.

``node_record`` runs on each node (its agent calls it): from each worker's wide sample table
(one row per sample: timing columns plus ``metric:<name>`` values) and resource rows it builds
the node's long ``samples`` and ``resources`` rows and merges its latency histograms per round.
``build_record`` runs on the driver: from every node's part of every invocation it makes a
``TrialRecord`` with one ``trials`` row per metric (statistics over rounds and invocations,
variance components and the repetition plan, the trial's aggregate throughput and overlap,
flags and target outcomes). Testable without Ray: tests feed it workers' results directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cluster.clock import ClockOffset, to_driver
from cluster.topology import Topology
from orchestrator.analysis.components import variance_components
from orchestrator.analysis.concurrency import concurrent_throughput
from orchestrator.analysis.flags import (
    FLAG_ORDER,
    FlagThresholds,
    flag_trial,
    peak_rss,
    resource_columns,
    thresholds,
)
from orchestrator.analysis.invocations import InvocationSummary, summarize_invocations
from orchestrator.analysis.latency import (
    latency_flags,
    latency_table_rows,
    merged_figures,
    node_histograms,
    trial_latencies,
    with_sample_percentiles,
)
from orchestrator.analysis.planning import plan_repetitions
from orchestrator.analysis.stats import summarize_rounds
from orchestrator.analysis.stopping import Look
from orchestrator.analysis.targets import Target, check_targets, target_columns
from orchestrator.records import MeasuredTrial, NodeResult, Trial, TrialRecord, WorkerResult
from orchestrator.settings import Sampling
from orchestrator.store.schemas import RESOURCES_SCHEMA, SAMPLES_SCHEMA, TRIALS_SCHEMA
from workloads.base import Metric, Workload, latency_metrics

CONFIDENCE = 0.95
"""Confidence level of every interval in the trials and workers rows."""


def base_row(run_id: str, trial: Trial) -> dict[str, Any]:
    """Return the columns every ``trials`` row of ``trial`` repeats."""
    return {
        "run_id": run_id,
        "trial_id": trial.trial_id,
        "workload": trial.workload,
        "params": json.dumps(dict(trial.params), sort_keys=True, default=str),
        "nodes": len(trial.node_ids),
        "node_ids": list(trial.node_ids),
        "hosts": trial.hosts,
        "workers": len(trial.slots),
        "placement": str(trial.shape.placement),
        "threads_per_worker": trial.shape.threads_per_worker,
        "mode": trial.shape.mode.value,
    }


def failed_record(run_id: str, trial: Trial, workload: type[Workload], error: str) -> TrialRecord:
    """Return the record of a trial that failed with ``error``: one row, no tables."""
    metric = workload.throughput
    row = {**base_row(run_id, trial), "metric": metric.name, "unit": metric.unit,
           "higher_is_better": metric.higher_is_better, "n": 0, "status": "failed", "error": error, "flags": [],
           "workload_version": workload.code_version()}
    return TrialRecord(trial, {}, (row,), error=error)


def sample_metrics(wide: pa.Table, workload: type[Workload], params: Mapping[str, Any]) -> tuple[Metric, ...]:
    """Return the metrics present in ``wide``: the primary one, declared extras, and points (``metrics_named``)."""
    return metrics_named([c[len("metric:"):] for c in wide.column_names if c.startswith("metric:")], workload, params)


def metrics_named(names: Sequence[str], workload: type[Workload], params: Mapping[str, Any]) -> tuple[Metric, ...]:
    """Return the primary metric and those of ``names`` the workload declares, in order.

    A workload may report a declared metric per point of an inner sweep as ``name@label``
    (``ns_per_access@L2``); such a name takes the unit and direction of ``name``. Names
    matching nothing declared are ignored.
    """
    derived = (m for lat in workload.latencies for m in latency_metrics(lat))
    declared = {m.name: m for m in (*workload.extra_metrics(params), *derived)}
    out = [workload.throughput]
    for name in names:
        base = declared.get(name) or declared.get(name.partition("@")[0])
        if base is not None:
            out.append(base if base.name == name else Metric(name, base.unit, base.description, base.better))
    return tuple(out)


def long_samples(run_id: str, trial: Trial, worker: WorkerResult, topology: Topology,
                 workload: type[Workload], invocation: int = 0) -> pa.Table:
    """Return one ``samples`` row per sample and metric of one worker of one invocation (``SAMPLES_SCHEMA``).

    The primary metric's value is ``ops / elapsed_ns * 1e9`` (operations per second); an
    extra metric's value is the workload's own per-sample figure. Extra metrics a sample
    did not report (NaN) are dropped rather than stored as fake zeros.
    """
    wide = worker.samples
    n = wide.num_rows
    ops = wide["ops"].to_numpy().astype(np.float64)
    elapsed = wide["elapsed_ns"].to_numpy().astype(np.float64)
    blocks: list[tuple[Metric, np.ndarray]] = [(workload.throughput, ops / elapsed * 1e9)]
    for metric in sample_metrics(wide, workload, trial.params)[1:]:
        blocks.append((metric, wide[f"metric:{metric.name}"].to_numpy(zero_copy_only=False).astype(np.float64)))
    domains = {topology.l3_domain_of(c) for c in worker.cpus}
    numas = {topology.numa_node_of(c) for c in worker.cpus}
    constant = {"run_id": run_id, "trial_id": trial.trial_id, "workload": trial.workload,
                "params": json.dumps(dict(trial.params), sort_keys=True, default=str),
                "node_id": worker.node_id, "hostname": worker.hostname, "worker_rank": worker.rank,
                "cpus": list(worker.cpus), "l3_domain": domains.pop() if len(domains) == 1 else None,
                "numa_node": numas.pop() if len(numas) == 1 else None, "invocation": invocation}
    timing = {c: wide[c].to_pylist() for c in ("repetition", "warmup", "iterations", "ops", "elapsed_ns")}
    # Stamps on the driver's time base, so rounds of several nodes line up (Cristian 1989).
    timing["start_ns"] = [to_driver(t, worker.clock) for t in wide["start_ns"].to_pylist()]
    timing["end_ns"] = [to_driver(t, worker.clock) for t in wide["end_ns"].to_pylist()]
    timing["clock_offset_ns"] = [worker.clock.offset_ns] * n
    columns: dict[str, list] = {name: [] for name in SAMPLES_SCHEMA.names}
    for metric, values in blocks:
        keep = [i for i in range(n) if np.isfinite(values[i])]
        columns["value"] += [float(values[i]) for i in keep]
        for c, v in timing.items():
            columns[c] += [v[i] for i in keep]
        columns["metric"] += [metric.name] * len(keep)
        columns["unit"] += [metric.unit] * len(keep)
        for c, v in constant.items():
            columns[c] += [v] * len(keep)
    return pa.table(columns, schema=SAMPLES_SCHEMA)


def long_resources(run_id: str, trial_id: str, worker: WorkerResult) -> pa.Table:
    """Return a worker's resource rows with run, trial, node and rank (null on node-wide rows)."""
    table = worker.resources
    n = table.num_rows
    ranks = [None if kind == "cpu_percent" else worker.rank for kind in table["kind"].to_pylist()]
    extra = {"run_id": [run_id] * n, "trial_id": [trial_id] * n, "node_id": [worker.node_id] * n,
             "worker_rank": ranks}
    for name, values in extra.items():
        table = table.append_column(name, pa.array(values, RESOURCES_SCHEMA.field(name).type))
    return table.select(RESOURCES_SCHEMA.names)


def invocation_of(subset: pa.Table) -> np.ndarray:
    """Return each row's invocation (0 where the column is missing or null: one invocation)."""
    if "invocation" not in subset.column_names:
        return np.zeros(subset.num_rows, dtype=np.int64)
    return subset["invocation"].fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)


def by_invocation(subset: pa.Table) -> list[pa.Table]:
    """Return one metric's rows split by invocation, in invocation order."""
    which = invocation_of(subset)
    return [subset.filter(pa.array(which == k)) for k in np.unique(which)]


def rounds_matrix(subset: pa.Table) -> tuple[np.ndarray, list[int]]:
    """Return one metric's measured values as rounds x workers (rounds every worker measured) and the ranks.

    Round r of every worker ran together, so a round, not a sample, is the independent unit:
    whatever hits a round (frequency, a neighbour, a bandwidth burst) hits all its samples.
    """
    ranks = sorted(set(subset["worker_rank"].to_pylist()))
    column = {rank: i for i, rank in enumerate(ranks)}
    cells: dict[int, dict[int, float]] = {}
    for rep, rank, value in zip(subset["repetition"].to_pylist(), subset["worker_rank"].to_pylist(),
                                subset["value"].to_pylist()):
        cells.setdefault(rep, {})[column[rank]] = value
    full = [rep for rep in sorted(cells) if len(cells[rep]) == len(ranks)]
    matrix = np.array([[cells[rep][c] for c in range(len(ranks))] for rep in full], dtype=float)
    return matrix.reshape(len(full), len(ranks)), ranks


CI_METHODS = {"rounds": "round bootstrap", "t": "t over invocations", "bootstrap": "bootstrap over invocations"}
"""``trials.ci_method`` of each interval ``summarize_invocations`` states."""


def invocation_columns(units: Sequence[np.ndarray], costs: Costs | None, rel_ci: float) -> dict[str, Any]:
    """Return the variance components of one metric's rounds by invocation and, with ``costs``, the plan.

    sd_* are square roots of the components of ``analysis.components`` (log scale, so a
    relative sd: 0.03 is 3%); None where the trial has too few invocations or rounds to tell.
    The plan is the cheapest invocations x rounds whose CI half-width is ``rel_ci``
    (``analysis.planning.plan_repetitions``, Kalibera & Jones 2013), at the costs measured.
    """
    out: dict[str, Any] = {}
    if not all(np.all(u > 0) for u in units):
        return out
    parts = variance_components([list(units)])
    invocation, rounds = parts.between_invocations, parts.between_rounds
    out.update(sd_between_invocations=None if invocation is None else float(np.sqrt(invocation)),
               sd_between_rounds=None if rounds is None else float(np.sqrt(rounds)))
    if costs is not None and invocation is not None and rounds is not None and costs.round_s > 0:
        plan = plan_repetitions(parts, half_width_rel=rel_ci, invocation_cost_s=costs.invocation_s,
                                round_cost_s=costs.round_s)
        if plan is not None:
            out.update(plan_invocations=plan.invocations, plan_rounds=plan.rounds_per_invocation,
                       plan_cost_s=plan.cost_s)
    return out


def _summary_columns(s: InvocationSummary) -> dict[str, Any]:
    return {"median": s.median, "ci_low": s.ci_low, "ci_high": s.ci_high, "invocations": s.invocations,
            "ci_level": CONFIDENCE if s.ci_low is not None else None,
            "ci_method": CI_METHODS.get(s.interval) if s.ci_low is not None else None}


def metric_rows(run_id: str, trial: Trial, samples: pa.Table, metrics: Sequence[Metric],
                trial_columns: Mapping[str, Any], trial_flags: Sequence[str], limits: FlagThresholds,
                stop: Look | None = None, costs: Costs | None = None,
                rel_ci: float = 0.02) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return the ``trials`` rows (one per metric) and ``workers`` rows (per metric and worker) of a trial.

    The unit of every statistic is the round (``rounds_matrix``) within its invocation: a
    metric's figure is the median over invocations of each invocation's median over rounds of
    the per-round mean over workers, with its CI per ``summarize_invocations`` (one
    invocation: the median over rounds and its round bootstrap, exactly as before
    invocations); mean, stdev, CV, percentiles and outliers describe all rounds together, n
    counts them; the variance components and the repetition plan come with them
    (``invocation_columns``); each worker's own figures go to the workers rows. The first
    metric is the primary throughput: its row also gets ``aggregate_throughput`` (all
    workers' operations per second over the wall time of their synchronized rounds), its
    figure and CI over invocations as above, and ``overlap`` (see ``concurrent_throughput``).
    With ``stop`` (``--until-stable`` in one invocation), the primary row's CI is that
    look's interval, whose level holds under the stopping. ``trial_columns`` (stop reason,
    resources) are copied onto every row; ``trial_flags`` join each row's own ``unstable`` flag.
    """
    measured = samples.filter(pc.invert(samples["warmup"]))
    hosts = {(r, n): (h, c) for r, n, h, c in zip(measured["worker_rank"].to_pylist(), measured["node_id"].to_pylist(),
                                                 measured["hostname"].to_pylist(), measured["cpus"].to_pylist())}
    node_of = {rank: (node, host, cpus) for (rank, node), (host, cpus) in hosts.items()}
    rows, worker_rows = [], []
    for index, metric in enumerate(metrics):
        subset = measured.filter(pc.equal(measured["metric"], metric.name))
        parts = [rounds_matrix(part) for part in by_invocation(subset)]
        ranks = sorted({r for _, rk in parts for r in rk})
        parts = [m for m, rk in parts if m.shape[0] and rk == ranks]  # an invocation every worker measured
        if not parts:
            continue
        matrix = np.vstack(parts)
        summary = summarize_rounds(matrix)
        s = summary.per_worker
        units = [m.mean(axis=1) for m in parts]
        figure = summarize_invocations(units)
        row = {**base_row(run_id, trial), "metric": metric.name, "unit": metric.unit,
               "higher_is_better": metric.higher_is_better, "n": s.n, "mean": s.mean,
               "stdev": s.stdev, "mad": s.mad, "cv": s.cv, "min": s.min,
               "max": s.max, "p5": s.p5, "p95": s.p95, "p99": s.p99, "outliers": s.outliers, "status": "ok",
               "error": None, **_summary_columns(figure), **trial_columns,
               **invocation_columns(units, costs if index == 0 else None, rel_ci)}
        flags = set(flag_trial({}, (), s.cv, limits)) | set(trial_flags)
        if index == 0:
            together = concurrent_throughput(subset)
            rep_invocation = dict(zip(subset["repetition"].to_pylist(), invocation_of(subset).tolist()))
            grouped: dict[int, list[float]] = {}
            for rep, value in zip(together.repetitions.tolist(), together.per_repetition.tolist()):
                grouped.setdefault(rep_invocation[rep], []).append(value)
            agg = summarize_invocations(list(grouped.values())) if grouped else None
            row.update(aggregate_throughput=float(together.aggregate) if np.isfinite(together.aggregate) else None,
                       aggregate_median=agg and agg.median, aggregate_ci_low=agg and agg.ci_low,
                       aggregate_ci_high=agg and agg.ci_high, overlap=float(together.overlap))
            if len(trial.slots) > 1 and together.overlap < limits.min_overlap:
                flags.add("desynchronized")
            if stop is not None and stop.ci_low is not None and figure.invocations == 1:
                row.update(ci_low=stop.ci_low, ci_high=stop.ci_high, ci_level=stop.confidence,
                           ci_method="repeated CI (until-stable)")
        row["flags"] = [f for f in FLAG_ORDER if f in flags] + sorted(flags - set(FLAG_ORDER))
        rows.append(row)
        for rank, w in zip(ranks, summary.workers):
            node, host, cpus = node_of[rank]
            worker_rows.append({"run_id": run_id, "trial_id": trial.trial_id, "workload": trial.workload,
                                "metric": metric.name, "unit": metric.unit, "worker_rank": rank, "node_id": node,
                                "hostname": host, "cpus": cpus, "n": w.n, "mean": w.mean, "median": w.median,
                                "cv": w.cv, "ci_low": w.ci_low, "ci_high": w.ci_high})
    return rows, worker_rows


def latency_figure_rows(run_id: str, trial: Trial, rows: list[dict[str, Any]], figures: Mapping[str, dict],
                        workload: type[Workload], trial_columns: Mapping[str, Any],
                        flags: set[str]) -> list[dict[str, Any]]:
    """Put each latency figure of every request merged into its row; return rows for figures no sample had.

    A percentile no sample had requests enough for (10-request samples and p99) can still be a
    trial figure: the trial's 100 requests support it.
    """
    derived = {m.name: m for lat in workload.latencies for m in latency_metrics(lat)}
    by_metric = {r["metric"]: r for r in rows}
    added = []
    for name, f in figures.items():
        row = by_metric.get(name)
        if row is None:
            if f["value"] is None:
                continue
            metric = derived[name]
            rounds = f["rounds"] if f["ci_low"] is not None else 0  # n: the rounds its CI resamples
            row = {**dict.fromkeys(TRIALS_SCHEMA.names), **base_row(run_id, trial), "metric": name, "unit": metric.unit,
                   "higher_is_better": metric.higher_is_better, "n": rounds, "status": "ok", "error": None,
                   **trial_columns, "flags": sorted(flags)}
            added.append(row)
        has_ci = f["ci_low"] is not None
        row.update(median=f["value"], ci_low=f["ci_low"], ci_high=f["ci_high"], requests=f["requests"],
                   ci_level=CONFIDENCE if has_ci else None,
                   ci_method="round bootstrap of merged histograms" if has_ci else None)
    return added


CLOCK_UNCERTAIN_SHARE = 0.01
"""Clock offset uncertainty, as a share of the median sample time, above which a trial is ``clock_uncertain``."""


def clock_flags(samples: pa.Table, clocks: Sequence[ClockOffset], metric: str) -> set[str]:
    """Return ``clock_uncertain`` when a node's clock offset is known worse than 1% of a sample's time.

    ``samples`` are the trial's long rows; ``metric`` (the primary one) picks one row per sample.
    """
    rows = samples.filter(pc.and_(pc.equal(samples["metric"], metric), pc.invert(samples["warmup"])))
    worst = max((c.uncertainty_ns for c in clocks), default=0)
    elapsed = rows["elapsed_ns"].to_numpy()
    return {"clock_uncertain"} if elapsed.size and worst > CLOCK_UNCERTAIN_SHARE * float(np.median(elapsed)) else set()


def workload_flags(workers: Sequence[WorkerResult]) -> set[str]:
    """Return the sample flags the workload raised in any measured sample (``Measurement.flags``)."""
    raised: set[str] = set()
    for w in workers:
        if "flags" in w.samples.column_names:
            for warm, flags in zip(w.samples["warmup"].to_pylist(), w.samples["flags"].to_pylist()):
                if not warm:
                    raised.update(flags or ())
    return raised


def node_record(run_id: str, trial: Trial, workers: Sequence[WorkerResult], topology: Topology,
                workload: type[Workload], invocation: int = 0) -> NodeResult:
    """Return one node's part of one invocation of a trial from its workers' raw results (its agent calls this).

    Each sample gets its latency percentiles (``with_sample_percentiles``); the node's long
    ``samples`` rows (each stamped with ``invocation``) and ``resources`` rows are built here,
    and its latency histograms merged per round (``node_histograms``), so the driver receives
    one part per node.
    """
    ready = [replace(w, samples=with_sample_percentiles(w.samples, workload)) for w in workers]
    names = dict.fromkeys(m.name for w in ready for m in sample_metrics(w.samples, workload, trial.params))
    return NodeResult(
        workers[0].node_id,
        pa.concat_tables([long_samples(run_id, trial, w, topology, workload, invocation) for w in ready]),
        pa.concat_tables([long_resources(run_id, trial.trial_id, w) for w in ready]),
        node_histograms([w.samples for w in workers], workload), tuple(names), frozenset(workload_flags(ready)),
        {w.rank: peak_rss(w.resources) for w in ready}, {cpu: m for w in ready for cpu, m in w.cpu_means.items()},
        max(w.setup_s for w in ready), workers[0].clock)


def node_parts(run_id: str, measured: MeasuredTrial, topologies: Mapping[str, Topology],
               workload: type[Workload]) -> tuple[NodeResult, ...]:
    """Return each node's part of one invocation: as its agent built it, else built here from the workers' results."""
    if measured.nodes:
        return measured.nodes
    by_node: dict[str, list[WorkerResult]] = {}
    for w in measured.workers:
        by_node.setdefault(w.node_id, []).append(w)
    return tuple(node_record(run_id, measured.trial, ws, topologies[n], workload, measured.invocation)
                 for n, ws in by_node.items())


def rounds_of(measured: MeasuredTrial) -> int:
    """Return how many measured rounds an invocation took (its first node's, or first worker's)."""
    table = measured.nodes[0].samples if measured.nodes else measured.workers[0].samples
    return pc.count_distinct(table.filter(pc.invert(table["warmup"]))["repetition"]).as_py()


@dataclass(frozen=True, slots=True)
class Costs:
    """What a trial's measurement cost, as the repetition plan needs it (Kalibera & Jones 2013)."""

    invocation_s: float
    """Mean seconds per invocation besides its measured rounds: processes, setup, calibration, warm-up."""
    round_s: float
    """Mean seconds per measured round."""


def invocation_costs(invocations: Sequence[MeasuredTrial]) -> Costs:
    """Return the mean cost of an invocation and of a round over ``invocations``."""
    rounds = sum(rounds_of(inv) for inv in invocations)
    return Costs(float(np.mean([inv.overhead_s for inv in invocations])),
                 sum(inv.measure_s for inv in invocations) / rounds if rounds else 0.0)


def _stop_reason(invocations: Sequence[MeasuredTrial]) -> str:
    """Return why measuring stopped: the one reason all invocations share, else max-time (some ran out)."""
    reasons = {inv.stop_reason for inv in invocations}
    return reasons.pop() if len(reasons) == 1 else "max-time"


def build_record(run_id: str, invocations: Sequence[MeasuredTrial], topologies: Mapping[str, Topology],
                 workload: type[Workload], sampling: Sampling, targets: Sequence[Target] = (),
                 planned: int | None = None) -> TrialRecord:
    """Return everything stored for a measured trial: all its invocations (see the module docstring).

    Args:
        run_id: the run the trial belongs to.
        invocations: in invocation order, each one's node parts (``nodes``, from the agents) or
            its workers' results in slot order (whose node parts are then built here).
        topologies: each node's topology, by node id (for the L3 domain and NUMA node columns).
        workload: the trial's workload class (its declared metrics and sample flags).
        sampling: the run's sampling settings (the flag thresholds come from them).
        targets: the run's targets; each checked metric's row records its outcome.
        planned: the invocations asked for; fewer measured (an interrupt) flags every row ``partial``.
    """
    trial = invocations[0].trial
    parts = [node_parts(run_id, inv, topologies, workload) for inv in invocations]
    nodes = [n for part in parts for n in part]
    by_node: dict[str, list[NodeResult]] = {}
    for n in nodes:
        by_node.setdefault(n.node_id, []).append(n)
    # The driver stores what no agent wrote itself (``NodeResult.parts``).
    unwritten = {i: kept for i, ns in by_node.items() if (kept := [n for n in ns if not n.parts])}
    tables = {"samples": {i: pa.concat_tables([n.samples for n in ns]) for i, ns in unwritten.items()},
              "resources": {i: pa.concat_tables([n.resources for n in ns]) for i, ns in unwritten.items()}}
    samples = pa.concat_tables([n.samples for ns in by_node.values() for n in ns])
    # One histogram table per node over all invocations: round numbers run on across them.
    latencies = trial_latencies([pa.concat_tables(hs, promote_options="default") for ns in by_node.values()
                                 if (hs := [n.latency for n in ns if n.latency is not None])], workload)
    peaks: dict[int, float | None] = {}
    for rank, peak in ((r, p) for n in nodes for r, p in n.peaks.items()):
        peaks[rank] = peaks.get(rank) if peak is None else max(peak, peaks.get(rank) or 0.0)
    pinned = {(s.node_id, c) for s in trial.slots if s.pinned for c in s.cpus}
    busy: dict[tuple[str, int], list[float]] = {}
    for n in nodes:
        for cpu, m in n.cpu_means.items():
            busy.setdefault((n.node_id, cpu), []).append(m)
    means = {key: float(np.mean(values)) for key, values in busy.items()}
    seen = metrics_named(list(dict.fromkeys(name for n in nodes for name in n.metrics)), workload, trial.params)
    metrics = (workload.throughput, *(m for m in seen if m.name != workload.throughput.name))
    limits = thresholds(sampling)
    costs = invocation_costs(invocations)
    columns = {"stop_reason": _stop_reason(invocations), "measure_s": sum(inv.measure_s for inv in invocations),
               "setup_s": max(n.setup_s for n in nodes),
               "invocation_cost_s": costs.invocation_s, "round_cost_s": costs.round_s,
               "invocations_planned": planned or len(invocations), **resource_columns(means, pinned, peaks)}
    partial = {"partial"} if planned is not None and len(invocations) < planned else set()
    raised = (set(flag_trial(means, pinned, None, limits)) | {f for n in nodes for f in n.flags}
              | latency_flags(latencies, trial.params) | partial | {f for inv in invocations for f in inv.flags}
              | clock_flags(samples, [n.clock for n in nodes], workload.throughput.name))
    stop = invocations[0].stop if len(invocations) == 1 else None
    rows, worker_rows = metric_rows(run_id, trial, samples, metrics, columns, sorted(raised), limits, stop, costs,
                                    sampling.rel_ci)
    rows += latency_figure_rows(run_id, trial, rows, merged_figures(latencies), workload, columns, raised)
    outcomes = target_columns(check_targets(targets, rows))
    version = workload.code_version()
    rows = [{**r, "target": outcomes.get((r["trial_id"], r["metric"])), "workload_version": version} for r in rows]
    return TrialRecord(trial, tables, tuple(rows), tuple(worker_rows),
                       tuple(latency_table_rows(run_id, trial.trial_id, trial.workload, latencies)),
                       {n.node_id: n.clock for n in parts[0]}, parts=tuple(e for n in nodes for e in n.parts))
