"""Test helper: read a results dataset through the product's one reader, and copy runs within or between datasets."""

from __future__ import annotations

import functools
import json
import os
from datetime import datetime

import pyarrow as pa

from orchestrator.store.reader import Dataset


def run_query(root: str | os.PathLike, sql: str) -> pa.Table:
    """Return the result of one read-only query over the dataset at ``root`` (a folder or a URI)."""
    return Dataset(root).query(sql)


@functools.lru_cache(maxsize=4)
def _committed(root: str, run_id: str) -> tuple[tuple[str, str | None, pa.Table], ...]:
    """Return (table, node id, data) of every committed file of a run, read once."""
    from orchestrator.store import files, layout
    from orchestrator.store.writer import RunStore

    store = RunStore(root, run_id)
    out = []
    for e in store.manifest.entries():
        node = e.path.rpartition("/")[0].rpartition("node=")[2] if e.table in layout.TRIAL_TABLES else None
        out.append((e.table, node, files.read_parquet(store.location, e.path)))
    return tuple(out)


def copy_run(root: str | os.PathLike, run_id: str, new_id: str, target: str | os.PathLike | None = None) -> None:
    """Copy every committed file of run ``run_id`` to run ``new_id`` (under ``target``, default ``root``).

    The run id column is rewritten, so the copy is a run of its own, committed in one checkpoint.
    """
    import pyarrow.compute as pc

    from orchestrator.store.writer import RunStore

    dest = RunStore(target if target is not None else root, new_id, new=True)
    entries = []
    for table, node, data in _committed(os.fspath(root), run_id):
        column = pc.if_else(pc.is_valid(data["run_id"]), new_id, data["run_id"])
        data = data.set_column(data.schema.get_field_index("run_id"), "run_id", column)
        entries.append(dest.parts.write(table, data, "part", node))
    dest.commit(entries, note=f"copy of {run_id}", checkpoint=True)


NODE = {"node_id": "n" * 56, "hostname": "ci-1", "ip": "10.0.0.1", "is_head": True, "ray_cpus": 8,
        "usable_cpus": list(range(8)), "cpu_model": "AMD EPYC 7B13", "cpu_family": "25", "cpu_model_number": "1",
        "cpu_stepping": "1", "microcode": "0xa0011d1", "arch": "x86_64", "kernel": "6.1.0",
        "memory_total_bytes": 32 * 2**30 - 300 * 2**20, "governor": "performance", "host_id": "boot-1",
        "topology": json.dumps({"packages": [0], "cores": [{"cpus": [c, c + 4]} for c in range(4)],
                                "numa_nodes": [{"id": 0}], "l3_domains": [{"size_bytes": 32 * 2**20}]}),
        "versions": json.dumps({"python": "3.11.7", "numpy": "2.4.0", "ray": "2.60.0"})}
"""A synthetic node: one 4-core SMT2 EPYC with 32 MiB of L3 and 32 GiB."""


def write_run(root: str | os.PathLike, run_id: str, started_at: datetime, trials: list[dict], *,
              commit: str | None = None, label: str | None = None, node: dict | None = None,
              samples: bool = True, status: str = "complete") -> None:
    """Write one synthetic finished run through the product's writer, committed in one checkpoint.

    Each of ``trials`` gives ``workload``, ``metric``, ``rounds`` (the per-round values of one
    worker, one invocation) and optionally ``unit``, ``higher_is_better`` (default True),
    ``params`` (JSON), ``workload_version``; samples are written only with ``samples``. A
    ``commit`` is stated (``--commit``), so it names the run's code.
    """
    import numpy as np

    from orchestrator.analysis.stats import median_order_ci
    from orchestrator.store.writer import RunStore

    node = {**NODE, **(node or {}), "run_id": run_id}
    store = RunStore(root, run_id, new=True)
    parts = [store.parts.write("runs", [{
        "run_id": run_id, "started_at": started_at, "finished_at": started_at, "command": "synthetic", "spec": "{}",
        "status": status, "trials_total": len(trials), "trials_failed": 0, "git_commit": commit,
        "commit_source": "--commit" if commit else None, "label": label, "python_version": "3.11.7",
        "ray_version": "2.60.0"}], "run"), store.parts.write("nodes", [node], "node")]
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
                  "end_ns": r + 1, "metric": t["metric"], "value": float(v), "unit": t.get("unit", "ops/s"),
                  "invocation": 0} for r, v in enumerate(values)]
    parts.append(store.parts.write("trials", rows, "rows"))
    if samples and long:
        parts.append(store.parts.write("samples", long, "part", node["node_id"]))
    store.commit(parts, note="synthetic run", checkpoint=True)
