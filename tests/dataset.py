"""Test helper: read a results folder through the product's one reader."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from orchestrator.store.reader import Dataset


def run_query(root: Path, sql: str) -> pa.Table:
    """Return the result of one read-only query over the dataset at ``root``."""
    return Dataset(root).query(sql)


def copy_run(root: Path, run_id: str, new_id: str, target: Path | None = None) -> None:
    """Copy every file of run ``run_id`` to run ``new_id`` (under ``target``, default ``root``).

    The run id column is rewritten, so the copy is a run of its own.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for table_dir in sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")):
        source = table_dir / f"run_id={run_id}"
        for path in sorted(source.rglob("*.parquet")) if source.is_dir() else ():
            data = pq.read_table(path)
            if "run_id" in data.column_names:
                column = pc.if_else(pc.is_valid(data["run_id"]), new_id, data["run_id"])
                data = data.set_column(data.schema.get_field_index("run_id"), "run_id", column)
            dest = Path(target or root) / table_dir.name / f"run_id={new_id}" / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(data, dest)


NODE = {"node_id": "n" * 56, "hostname": "ci-1", "ip": "10.0.0.1", "is_head": True, "ray_cpus": 8,
        "usable_cpus": list(range(8)), "cpu_model": "AMD EPYC 7B13", "cpu_family": "25", "cpu_model_number": "1",
        "cpu_stepping": "1", "microcode": "0xa0011d1", "arch": "x86_64", "kernel": "6.1.0",
        "memory_total_bytes": 32 * 2**30 - 300 * 2**20, "governor": "performance", "host_id": "boot-1",
        "topology": json.dumps({"packages": [0], "cores": [{"cpus": [c, c + 4]} for c in range(4)],
                                "numa_nodes": [{"id": 0}], "l3_domains": [{"size_bytes": 32 * 2**20}]}),
        "versions": json.dumps({"python": "3.11.7", "numpy": "2.4.0", "ray": "2.60.0"})}
"""A synthetic node: one 4-core SMT2 EPYC with 32 MiB of L3 and 32 GiB."""


def write_run(root: str | os.PathLike, run_id: str, started_at: datetime, trials: list[dict], *,
              commit: str | None = None, node: dict | None = None, samples: bool = True,
              status: str = "complete") -> None:
    """Write one synthetic complete run through the product's writer.

    Each of ``trials`` gives ``workload``, ``metric``, ``rounds`` (the per-round values of one
    worker) and optionally ``unit``, ``higher_is_better`` (default True), ``params`` (JSON),
    ``workload_version``; samples are written only with ``samples``.
    """
    import numpy as np

    from orchestrator.analysis.stats import median_order_ci
    from orchestrator.store.writer import RunStore

    node = {**NODE, **(node or {}), "run_id": run_id}
    store = RunStore(root, run_id)
    store.write_run({"run_id": run_id, "started_at": started_at, "finished_at": started_at, "command": "synthetic",
                     "spec": "{}", "status": status, "trials_total": len(trials), "trials_failed": 0,
                     "git_commit": commit, "python_version": "3.11.7", "ray_version": "2.60.0"})
    store.write_nodes([node])
    rows, long = [], []
    for i, t in enumerate(trials):
        trial_id = f"{t['workload']}-{i:010x}"
        values = np.asarray(t["rounds"], dtype=float)
        ci = median_order_ci(values) if values.size >= 6 else None
        rows.append({"run_id": run_id, "trial_id": trial_id, "workload": t["workload"],
                     "params": t.get("params", "{}"), "nodes": 1, "node_ids": [node["node_id"]], "workers": 1,
                     "placement": "compact", "threads_per_worker": 1, "mode": "weak", "metric": t["metric"],
                     "unit": t.get("unit", "ops/s"), "higher_is_better": t.get("higher_is_better", True),
                     "n": int(values.size), "median": float(np.median(values)), "mean": float(values.mean()),
                     "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
                     "cv": float(values.std(ddof=1) / values.mean()) if values.size > 1 else None,
                     "status": "ok", "workload_version": t.get("workload_version", "0123456789ab")})
        long += [{"run_id": run_id, "trial_id": trial_id, "workload": t["workload"], "params": t.get("params", "{}"),
                  "node_id": node["node_id"], "hostname": node["hostname"], "worker_rank": 0, "cpus": [0],
                  "repetition": r, "warmup": False, "iterations": 1, "ops": 1, "elapsed_ns": 1, "start_ns": r,
                  "end_ns": r + 1, "metric": t["metric"], "value": float(v), "unit": t.get("unit", "ops/s")}
                 for r, v in enumerate(values)]
    store.write_trials(rows)
    if samples and long:
        from orchestrator.store.schemas import SAMPLES_SCHEMA

        store.write_trial_tables("all", {"samples": {node["node_id"]: pa.Table.from_pylist(long, SAMPLES_SCHEMA)}})
