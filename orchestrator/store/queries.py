"""The questions the other layers ask the dataset, each one function over ``Dataset``: the only SQL outside the reader.

Each returns plain rows (dicts) or an Arrow table, in a stated order; analysis and render
never see SQL. ``run_id`` is always a resolved id (``Dataset.resolve``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from orchestrator.records import COMPARE_KEY, MetricRounds, RunRounds
from orchestrator.store.reader import Dataset
from workloads.errors import UserError


def run_samples(dataset: Dataset, run_id: str) -> pa.Table:
    """Return every sample of a run with its timing: what a sweep's scaling analysis reads."""
    return dataset.table("SELECT trial_id, worker_rank, repetition, warmup, metric, value, ops, start_ns, end_ns "
                         "FROM samples WHERE run_id = ?", [run_id])


def round_units(dataset: Dataset, run_ids: Sequence[str], workloads: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Return per run, ok trial, metric, invocation and round: the mean over workers and how many workers reported it.

    Rows carry ``run_id``, ``COMPARE_KEY``, ``metric``, ``unit``, ``hib`` (higher is better),
    ``invocation`` (0 for samples written before invocations), ``repetition``, ``value`` (the
    round's mean), ``reported`` and ``expected`` (the trial's workers), ordered by run,
    configuration, metric, invocation and round; only ``workloads``' trials when given.
    """
    keys = ", ".join("t." + k for k in COMPARE_KEY)
    marks = ", ".join("?" for _ in run_ids) or "NULL"
    only = "AND list_contains(?, t.workload)" if workloads is not None else ""
    return dataset.rows(f"""
        SELECT s.run_id, {keys}, t.metric, any_value(t.unit) AS unit, any_value(t.higher_is_better) AS hib,
               coalesce(s.invocation, 0) AS invocation, s.repetition, avg(s.value) AS value,
               count(*) AS reported, any_value(t.workers) AS expected
        FROM samples s JOIN trials t
          ON s.run_id = t.run_id AND s.trial_id = t.trial_id AND s.metric = t.metric
        WHERE s.run_id IN ({marks}) {only} AND NOT s.warmup AND t.status = 'ok' AND isfinite(s.value)
        GROUP BY ALL ORDER BY s.run_id, {keys}, t.metric, invocation, s.repetition""",
                        [*run_ids, *([list(workloads)] if workloads is not None else [])])


def run_rounds(dataset: Dataset, ref: str) -> RunRounds:
    """Return the run ``ref`` names (an id, ``latest`` or ``latest~N``) with its rounds per metric and invocation.

    Raises:
        UserError: a malformed or unknown run reference.
    """
    run_id = dataset.resolve(ref)
    metrics: dict[tuple, tuple[str, bool | None, dict[int, list[float]]]] = {}
    for row in round_units(dataset, [run_id]):
        key = (*(row[k] for k in COMPARE_KEY), row["metric"])
        entry = metrics.setdefault(key, (row["unit"], row["hib"], {}))
        if row["reported"] == row["expected"]:
            entry[2].setdefault(row["invocation"], []).append(row["value"])
    run = next((r for r in run_index(dataset, [run_id])), {})
    flags = metric_flags(dataset, run_id)
    return RunRounds(run_id, run.get("status"), stored_trials(dataset, run_id), run.get("trials_total"),
                     {k: MetricRounds(unit, hib, tuple(tuple(v) for _, v in sorted(inv.items())), flags.get(k, ()))
                      for k, (unit, hib, inv) in metrics.items()},
                     run.get("git_commit"), run.get("label"), run.get("host"), run.get("started_at"))


def metric_flags(dataset: Dataset, run_id: str) -> dict[tuple, tuple[str, ...]]:
    """Return per ok configuration (``COMPARE_KEY`` values) and metric the flags its trials carry, sorted."""
    keys = ", ".join(COMPARE_KEY)
    rows = dataset.rows(f"""
        SELECT {keys}, metric, list_sort(list_distinct(flatten(list(flags) FILTER (WHERE flags IS NOT NULL)))) AS flags
        FROM trials WHERE run_id = ? AND status = 'ok' GROUP BY ALL""", [run_id])
    return {(*(r[k] for k in COMPARE_KEY), r["metric"]): tuple(r["flags"] or ()) for r in rows}


def run_index(dataset: Dataset, run_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Return every run (or those of ``run_ids``) with what says which code and machine it measured.

    One row per run, oldest first (start time, then id: a stable order): ``run_id``,
    ``started_at``, ``status``, ``trials_total``, ``git_commit``, ``commit_source``,
    ``git_dirty``, ``label``, ``python_version``, ``ray_version`` and ``host`` (the head node's
    hostname and CPU model; null without nodes rows). The history of a series over commits
    reads runs in this order.
    """
    where = "WHERE list_contains(?, r.run_id)" if run_ids is not None else ""
    return dataset.rows(f"""
        SELECT r.run_id, r.started_at, r.status, r.trials_total, r.git_commit, r.commit_source, r.git_dirty,
               r.label, r.python_version, r.ray_version, h.host
        FROM runs r LEFT JOIN (
            SELECT run_id, arg_max(hostname || ' · ' || coalesce(cpu_model, '?'), is_head::INT) AS host
            FROM nodes GROUP BY run_id) h ON r.run_id = h.run_id
        {where}
        ORDER BY r.started_at, r.run_id""", [list(run_ids)] if run_ids is not None else [])


def stored_trials(dataset: Dataset, run_id: str) -> int:
    """Return how many distinct trials a run has stored (any status)."""
    return dataset.rows("SELECT count(DISTINCT trial_id) AS n FROM trials WHERE run_id = ?", [run_id])[0]["n"]


def measured_samples(dataset: Dataset, run_id: str) -> list[dict[str, Any]]:
    """Return each measured sample of a run's trials with the trial's shape, by workload, shape and worker."""
    return dataset.rows("""
        SELECT s.workload, t.workers, t.placement, t.params, s.hostname, s.worker_rank, s.metric, s.unit, s.value
        FROM samples s JOIN trials t ON s.run_id = t.run_id AND s.trial_id = t.trial_id AND s.metric = t.metric
        WHERE s.run_id = ? AND NOT s.warmup AND t.overlap IS NOT NULL
        ORDER BY s.workload, t.workers, t.placement, t.params, s.hostname, s.worker_rank""", [run_id])


def scaling(dataset: Dataset, run_id: str) -> list[dict[str, Any]]:
    """Return a run's ``scaling`` rows by workload, parameters, series and N."""
    return dataset.rows("SELECT * FROM scaling WHERE run_id = ? ORDER BY workload, params, series, n", [run_id])


def topologies(dataset: Dataset, run_id: str) -> list[str]:
    """Return the stored topology JSON of each node of a run, the head's first."""
    return [r["topology"] for r in dataset.rows(
        "SELECT topology FROM nodes WHERE run_id = ? ORDER BY is_head DESC", [run_id])]


def point_medians(dataset: Dataset, run_id: str, workload: str, kinds: Sequence[str]) -> list[dict[str, Any]]:
    """Return the ok medians of a workload's per-point metrics (``<kind>@<point>``) of the given kinds."""
    likes = " OR ".join("metric LIKE ?" for _ in kinds)
    return dataset.rows(f"""
        SELECT trial_id, workers, placement, metric, median FROM trials
        WHERE run_id = ? AND workload = ? AND status = 'ok' AND ({likes})""",
                        [run_id, workload, *(f"{k}@%" for k in kinds)])


def latency_histograms(dataset: Dataset, run_id: str, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Return the merged histograms of a run's latency distributions named ``metrics``, with each trial's shape."""
    return dataset.rows("""
        SELECT l.workload, l.metric, l.unit, l.requests, l.histogram, t.workers, t.placement, t.params
        FROM latency l JOIN (SELECT DISTINCT run_id, trial_id, workers, placement, params FROM trials) t
          ON l.run_id = t.run_id AND l.trial_id = t.trial_id
        WHERE l.run_id = ? AND list_contains(?, l.metric)
        ORDER BY l.workload, l.metric, t.workers""", [run_id, list(metrics)])


def capacity(dataset: Dataset, run_id: str) -> list[dict[str, Any]]:
    """Return a run's ``capacity`` rows by N."""
    return dataset.rows("SELECT * FROM capacity WHERE run_id = ? ORDER BY n", [run_id])


def throughput_unit(dataset: Dataset, run_id: str) -> str | None:
    """Return the unit of the first higher-is-better metric of a run (its throughput), None without one."""
    found = dataset.rows("SELECT unit FROM trials WHERE run_id = ? AND higher_is_better LIMIT 1", [run_id])
    return found[0]["unit"] if found else None


def capacity_steps(dataset: Dataset, run_id: str, trial_ids: Sequence[str], metric: str) -> list[dict[str, Any]]:
    """Return each open-loop step among ``trial_ids``: offered rate (total/s) and ``metric``'s median and CI."""
    return dataset.rows("""
        SELECT t.trial_id, any_value(json_extract(t.params, '$.rate')::DOUBLE * t.workers) AS offered_per_s,
               any_value(median) AS value_ms, any_value(ci_low) AS ci_low_ms, any_value(ci_high) AS ci_high_ms
        FROM trials t WHERE t.run_id = ? AND list_contains(?, t.trial_id)
          AND t.metric = ? AND json_extract(t.params, '$.rate')::DOUBLE > 0
        GROUP BY t.trial_id""", [run_id, list(trial_ids), metric])


def nodes(dataset: Dataset, run_id: str) -> list[dict[str, Any]]:
    """Return a run's ``nodes`` rows, the head's last."""
    return dataset.rows("SELECT * FROM nodes WHERE run_id = ? ORDER BY is_head, hostname, node_id", [run_id])


SELECTOR_HELP = ("a run id, latest, latest~N, a range OLDER..NEWER of those, commit:SHA-PREFIX or label:TEXT; "
                 "several joined by commas")
"""What a run selector may be (``compare``, ``report --vs``, ``--prior``)."""


def _select_one(dataset: Dataset, part: str, complete: list[dict[str, Any]]) -> list[str]:
    """Return the run ids one selector part names, oldest first (see ``select_runs``)."""
    kind, colon, value = part.partition(":")
    if colon and kind == "commit":
        prefix = value.strip().lower()
        found = [r for r in complete if prefix and (r["git_commit"] or "").lower().startswith(prefix)]
        commits = sorted({r["git_commit"] for r in found})
        if not found:
            raise UserError(f"Selector {part!r} matches no complete run; `topobench query \"SELECT run_id, "
                            "git_commit, label FROM runs\"` lists the runs' commits.")
        if len(commits) > 1:
            raise UserError(f"Selector {part!r} matches {len(commits)} commits ({', '.join(c[:12] for c in commits)}); "
                            "give more digits of the one you mean.")
        return [r["run_id"] for r in found]
    if colon and kind == "label":
        found = [r["run_id"] for r in complete if r["label"] == value.strip()]
        if not found:
            raise UserError(f"Selector {part!r} matches no complete run; label runs with `--label`, and "
                            "`topobench query \"SELECT run_id, label FROM runs\"` lists the labels.")
        return found
    older, dots, newer = part.partition("..")
    if dots and older and newer:
        ends = sorted(dataset.resolve(e) for e in (older, newer))
        order = [r["run_id"] for r in run_index(dataset)]
        low, high = sorted(order.index(e) for e in ends)
        wanted = set(order[low:high + 1])
        return [r["run_id"] for r in complete if r["run_id"] in wanted]
    return [dataset.resolve(part)]


def select_runs(dataset: Dataset, selector: str) -> tuple[str, ...]:
    """Return the run ids ``selector`` names, oldest first, each once.

    A selector is ``SELECTOR_HELP``: ``latest~3..latest`` is four runs; ``commit:abc123`` every
    complete run whose commit starts so (one commit only); ``label:v2`` every complete run
    labelled so. A range, a commit and a label take complete runs only; a run named by its id
    is taken whatever its status.

    Raises:
        UserError: an empty selector, or a part that names no run (the sentence says which).
    """
    parts = [p.strip() for p in selector.split(",")]
    if not selector.strip() or not all(parts):
        raise UserError(f"Run selector {selector!r} is empty somewhere; give {SELECTOR_HELP}.")
    complete = [r for r in run_index(dataset) if r["status"] == "complete"]
    found: list[str] = []
    for part in parts:
        found += [r for r in _select_one(dataset, part, complete) if r not in found]
    order = {r["run_id"]: i for i, r in enumerate(run_index(dataset, found))}
    return tuple(sorted(found, key=lambda r: order.get(r, -1)))


def history_figures(dataset: Dataset) -> list[dict[str, Any]]:
    """Return every ok trial figure with what makes it part of a series, by run, trial and metric."""
    return dataset.rows("""
        SELECT run_id, trial_id, workload, workload_version, params, placement, nodes, workers, threads_per_worker,
               mode, metric, unit, higher_is_better, median, ci_low, ci_high, n, cv
        FROM trials WHERE status = 'ok' ORDER BY run_id, trial_id, metric""")


def history_nodes(dataset: Dataset) -> list[dict[str, Any]]:
    """Return every node of every run with its stable identity and its environment, by run, the head first."""
    return dataset.rows("""
        SELECT run_id, node_id, host_id, hostname, is_head, cpu_model, cpu_family, cpu_model_number, cpu_stepping,
               arch, memory_total_bytes, topology, kernel, microcode, governor, versions
        FROM nodes ORDER BY run_id, is_head DESC, node_id""")


def acks(dataset: Dataset) -> list[dict[str, Any]]:
    """Return every acknowledgement of a change (``topobench history ack``), oldest first."""
    return dataset.rows("SELECT * FROM acks ORDER BY acked_at, change_id")
