"""Turn a worker's wide sample table into the dataset's long ``samples`` rows."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from orchestrator.store import SAMPLES_SCHEMA
from workloads.base import Metric


@dataclass(frozen=True, slots=True)
class WorkerMeta:
    """Who took a worker's samples: the columns repeated on each of its rows."""

    run_id: str
    trial_id: str
    workload: str
    params: Mapping[str, Any]
    node_id: str
    hostname: str
    worker_rank: int
    cpus: tuple[int, ...]
    l3_domain: int | None
    numa_node: int | None


def sample_metrics(wide: pa.Table, throughput: Metric, extras: tuple[Metric, ...]) -> tuple[Metric, ...]:
    """Return the metrics present in ``wide``: the primary one, declared extras, and points.

    A workload may report a declared metric per point of an inner sweep as
    ``name@label`` (``ns_per_access@L2``); such a column takes the unit and direction
    of ``name``. Columns matching nothing declared are ignored.
    """
    declared = {m.name: m for m in extras}
    out = [throughput]
    for column in wide.column_names:
        if not column.startswith("metric:"):
            continue
        name = column[len("metric:"):]
        base = declared.get(name) or declared.get(name.partition("@")[0])
        if base is not None:
            out.append(base if base.name == name else Metric(name, base.unit, base.description,
                                                             base.better))
    return tuple(out)


def to_long(wide: pa.Table, meta: WorkerMeta, throughput: Metric, extras: tuple[Metric, ...]) -> pa.Table:
    """Return one row per sample and metric in ``SAMPLES_SCHEMA``.

    The primary metric's value is ``ops / elapsed_ns * 1e9`` (operations per second); an
    extra metric's value is the workload's own per-sample figure. Extra metrics a sample
    did not report (NaN) are dropped rather than stored as fake zeros.
    """
    n = wide.num_rows
    ops = wide["ops"].to_numpy().astype(np.float64)
    elapsed = wide["elapsed_ns"].to_numpy().astype(np.float64)
    blocks: list[tuple[Metric, np.ndarray]] = [(throughput, ops / elapsed * 1e9)]
    for metric in sample_metrics(wide, throughput, extras)[1:]:
        column = f"metric:{metric.name}"
        blocks.append((metric, wide[column].to_numpy(zero_copy_only=False).astype(np.float64)))
    timing = {c: wide[c].to_pylist() for c in
              ("repetition", "warmup", "iterations", "ops", "elapsed_ns", "start_ns", "end_ns")}
    params = json.dumps(dict(meta.params), sort_keys=True, default=str)
    columns: dict[str, list] = {name: [] for name in SAMPLES_SCHEMA.names}
    for metric, values in blocks:
        keep = [i for i in range(n) if np.isfinite(values[i])]
        for i in keep:
            columns["value"].append(float(values[i]))
            for c, v in timing.items():
                columns[c].append(v[i])
        count = len(keep)
        columns["metric"] += [metric.name] * count
        columns["unit"] += [metric.unit] * count
        for c, v in (("run_id", meta.run_id), ("trial_id", meta.trial_id), ("workload", meta.workload),
                     ("params", params), ("node_id", meta.node_id), ("hostname", meta.hostname),
                     ("worker_rank", meta.worker_rank), ("cpus", list(meta.cpus)),
                     ("l3_domain", meta.l3_domain), ("numa_node", meta.numa_node)):
            columns[c] += [v] * count
    return pa.table(columns, schema=SAMPLES_SCHEMA)
