"""The results dataset: Hive-style Parquet folders per run, written atomically.

Layout (see design.md)::

    <root>/runs/run_id=<id>/run.parquet
    <root>/nodes/run_id=<id>/nodes.parquet
    <root>/trials/run_id=<id>/trials.parquet
    <root>/samples/run_id=<id>/node=<node_id>/trial-<trial_id>.parquet
    <root>/scaling/run_id=<id>/scaling.parquet          (sweeps only)
    <root>/resources/run_id=<id>/node=<node_id>/trial-<trial_id>.parquet

Schema history (``topobench.schema_version`` in every file's metadata):
    1 — first version: runs, nodes, trials, samples; scaling (added by sweeps, additive);
        resources and the trials columns stop_reason … flags (issue 6, additive).
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from workloads.errors import UserError

SCHEMA_VERSION = 1
_RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")

RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")),
    ("command", pa.string()),
    ("spec", pa.string()),  # the validated request as JSON
    ("status", pa.string()),  # complete | failed | interrupted
    ("trials_total", pa.int32()),
    ("trials_failed", pa.int32()),
    ("topobench_version", pa.string()),
    ("ray_version", pa.string()),
    ("python_version", pa.string()),
    ("git_commit", pa.string()),  # of the working directory, when it is a git checkout
])

NODES_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("node_id", pa.string()),
    ("hostname", pa.string()),
    ("ip", pa.string()),
    ("is_head", pa.bool_()),
    ("ray_cpus", pa.int32()),
    ("usable_cpus", pa.list_(pa.int32())),
    ("cpu_model", pa.string()),
    ("cpu_flags", pa.list_(pa.string())),
    ("kernel", pa.string()),
    ("memory_total_bytes", pa.int64()),
    ("governor", pa.string()),
    ("boost", pa.bool_()),
    ("smt_active", pa.bool_()),
    ("load_avg_1m", pa.float64()),
    ("topology_summary", pa.string()),
    ("topology", pa.string()),  # Topology.to_dict() as JSON
    ("amd_x3d_mode", pa.string()),
    ("preferred_core_rank", pa.string()),  # JSON {cpu: rank}
    ("governors", pa.string()),  # JSON {cpu: governor} of the CPUs the run used
    ("versions", pa.string()),  # JSON {python, numpy, ray, pyarrow, blas}
    ("cpu_count", pa.int32()),
    ("memory_available_bytes", pa.int64()),
    ("vm", pa.string()),
    ("container", pa.string()),
    ("cpu_quota_cpus", pa.float64()),
])

TRIALS_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("trial_id", pa.string()),
    ("workload", pa.string()),
    ("params", pa.string()),
    ("nodes", pa.int32()),
    ("node_ids", pa.list_(pa.string())),
    ("workers", pa.int32()),
    ("placement", pa.string()),
    ("threads_per_worker", pa.int32()),
    ("mode", pa.string()),
    ("metric", pa.string()),
    ("unit", pa.string()),
    ("higher_is_better", pa.bool_()),
    ("n", pa.int32()),
    ("mean", pa.float64()),
    ("median", pa.float64()),
    ("stdev", pa.float64()),
    ("mad", pa.float64()),
    ("cv", pa.float64()),
    ("min", pa.float64()),
    ("max", pa.float64()),
    ("p5", pa.float64()),
    ("p95", pa.float64()),
    ("p99", pa.float64()),
    ("ci_low", pa.float64()),
    ("ci_high", pa.float64()),
    ("outliers", pa.int32()),
    ("aggregate_throughput", pa.float64()),  # all workers' ops over their rounds' wall time; unit as `unit`
    ("overlap", pa.float64()),  # smallest share of a worker's measuring time while all workers ran
    ("status", pa.string()),  # ok | failed
    ("error", pa.string()),
    # Added by issue 6 (additive): stopping, resources and flags; trial-level ones repeat on every row.
    ("stop_reason", pa.string()),  # repetitions | stable (CI narrow enough) | max-time (--until-stable)
    ("measure_s", pa.float64()),  # seconds from the shared start to the last worker's last sample end
    ("pinned_cpu_percent", pa.float64()),  # mean utilization of the planned CPUs while measuring, 0-100
    ("idlest_pinned_cpu_percent", pa.float64()),  # lowest per-CPU mean among the planned CPUs
    ("busiest_other_cpu_percent", pa.float64()),  # highest per-CPU mean among CPUs outside the plan
    ("peak_rss_bytes", pa.int64()),  # largest peak RSS of any worker
    ("worker_peak_rss_bytes", pa.list_(pa.int64())),  # peak RSS of each worker, by rank
    ("flags", pa.list_(pa.string())),
    ("target", pa.string()),  # outcome of the --target checks on this metric, e.g. "...>=20 pass"  # unstable (this metric's CV) | noisy | underused (the trial)
])

SAMPLES_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("trial_id", pa.string()),
    ("workload", pa.string()),
    ("params", pa.string()),
    ("node_id", pa.string()),
    ("hostname", pa.string()),
    ("worker_rank", pa.int32()),
    ("cpus", pa.list_(pa.int32())),
    ("l3_domain", pa.int32()),
    ("numa_node", pa.int32()),
    ("repetition", pa.int32()),
    ("warmup", pa.bool_()),
    ("iterations", pa.int64()),
    ("ops", pa.int64()),
    ("elapsed_ns", pa.int64()),
    ("start_ns", pa.int64()),
    ("end_ns", pa.int64()),
    ("metric", pa.string()),
    ("value", pa.float64()),
    ("unit", pa.string()),
])

# One row per sweep series and N; the fit columns repeat on every row of their series.
SCALING_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("workload", pa.string()),
    ("params", pa.string()),  # JSON
    ("dimension", pa.string()),  # workers (per node varied, nodes fixed) | nodes (workers per node fixed)
    ("series", pa.string()),  # the fixed dimensions, e.g. "nodes=1 placement=compact threads_per_worker=1"
    ("mode", pa.string()),  # weak | strong
    ("metric", pa.string()),
    ("unit", pa.string()),
    ("n", pa.int32()),  # total workers, or nodes
    ("samples", pa.int32()),  # per-repetition aggregate throughputs behind the median
    ("throughput_median", pa.float64()),
    ("throughput_ci_low", pa.float64()),
    ("throughput_ci_high", pa.float64()),
    ("speedup", pa.float64()),
    ("efficiency", pa.float64()),
    ("karp_flatt", pa.float64()),
    ("amdahl_serial_fraction", pa.float64()),
    ("amdahl_serial_fraction_ci_low", pa.float64()),
    ("amdahl_serial_fraction_ci_high", pa.float64()),
    ("amdahl_rmse", pa.float64()),
    ("usl_lambda", pa.float64()),
    ("usl_sigma", pa.float64()),
    ("usl_sigma_ci_low", pa.float64()),
    ("usl_sigma_ci_high", pa.float64()),
    ("usl_kappa", pa.float64()),
    ("usl_kappa_ci_low", pa.float64()),
    ("usl_kappa_ci_high", pa.float64()),
    ("usl_peak_n", pa.float64()),
    ("usl_rmse", pa.float64()),
    ("fit_note", pa.string()),  # why a fit is missing ("not enough points ...")
    ("verdict", pa.string()),
])

# One row per resource sample (long format); cpu_percent rows are node-wide (worker_rank null).
RESOURCES_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("trial_id", pa.string()),
    ("node_id", pa.string()),
    ("worker_rank", pa.int32()),  # null for node-wide rows (cpu_percent)
    ("t_ns", pa.int64()),  # wall clock, ns since the epoch, at the end of the sampled interval
    ("kind", pa.string()),  # cpu_percent | rss_bytes
    ("cpu", pa.int32()),  # the CPU of a cpu_percent row, else null
    ("value", pa.float64()),  # percent (0-100) or bytes, as kind says
])

# The one file per run of the tables that are not split by node and trial.
RUN_FILES = {"runs": "run.parquet", "nodes": "nodes.parquet", "trials": "trials.parquet"}

SCHEMAS = {"runs": RUNS_SCHEMA, "nodes": NODES_SCHEMA, "trials": TRIALS_SCHEMA, "samples": SAMPLES_SCHEMA,
           "scaling": SCALING_SCHEMA, "resources": RESOURCES_SCHEMA}


def new_run_id(now: datetime | None = None) -> str:
    """Return a sortable run id: UTC timestamp plus 6 random hex digits (20261129T085512Z-1a2b3c)."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it has the form ``new_run_id`` makes; else raise ``UserError``."""
    if not _RUN_ID.match(run_id):
        raise UserError(f"Run id {run_id!r} is not valid; run ids look like 20261129T085512Z-1a2b3c "
                        "(`topobench query \"SELECT run_id FROM runs\"` lists them).")
    return run_id


def write_atomic(path: Path, table: pa.Table, table_name: str) -> None:
    """Write ``table`` to ``path`` as Parquet via a temporary file and a rename.

    Readers see the old file or the new one, never half of one. The schema version and
    table name go into the file's key-value metadata.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(table.schema.metadata or {})
    meta[b"topobench.schema_version"] = str(SCHEMA_VERSION).encode()
    meta[b"topobench.table"] = table_name.encode()
    table = table.replace_schema_metadata(meta)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(root: Path) -> Path:
    """Return ``root`` resolved after checking it can be written; creates nothing.

    A missing folder is fine when its nearest existing parent is a writable folder.

    Raises:
        UserError: the folder (or the parent it would be made in) is not a writable folder.
    """
    root = Path(root).resolve()
    probe = root
    while not probe.exists():
        probe = probe.parent
    # os.access says yes to root everywhere (even /proc); only a real attempt tells.
    try:
        if not probe.is_dir():
            raise NotADirectoryError(20, "not a folder")
        os.rmdir(tempfile.mkdtemp(prefix=".topobench-write-check-", dir=probe))
    except OSError as exc:
        raise UserError(f"Results folder {str(root)!r} cannot be written ({str(probe)!r}: "
                        f"{exc.strerror or exc}); pass a writable folder with --results DIR.") from None
    return root


class RunStore:
    """Writes one run's files under a results root; every write replaces a whole file."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.root = Path(root)
        self.run_id = validate_run_id(run_id)

    def _path(self, table: str, *parts: str) -> Path:
        return self.root.joinpath(table, f"run_id={self.run_id}", *parts)

    def write_run(self, row: dict) -> None:
        """Write (or replace) the run's single ``runs`` row."""
        write_atomic(self._path("runs", RUN_FILES["runs"]), pa.Table.from_pylist([row], RUNS_SCHEMA), "runs")

    def write_nodes(self, rows: list[dict]) -> None:
        """Write the run's ``nodes`` rows, one per Ray node."""
        write_atomic(self._path("nodes", RUN_FILES["nodes"]), pa.Table.from_pylist(rows, NODES_SCHEMA), "nodes")

    def write_trials(self, rows: list[dict]) -> None:
        """Write all ``trials`` rows of the run so far (the file is replaced each time)."""
        write_atomic(self._path("trials", RUN_FILES["trials"]), pa.Table.from_pylist(rows, TRIALS_SCHEMA), "trials")

    def write_samples(self, node_id: str, trial_id: str, table: pa.Table) -> None:
        """Write one node's samples of one trial (already in ``SAMPLES_SCHEMA``)."""
        path = self._path("samples", f"node={node_id}", f"trial-{trial_id}.parquet")
        write_atomic(path, table.cast(SAMPLES_SCHEMA), "samples")

    def write_resources(self, node_id: str, trial_id: str, table: pa.Table) -> None:
        """Write one node's resource samples of one trial (columns of ``RESOURCES_SCHEMA``)."""
        path = self._path("resources", f"node={node_id}", f"trial-{trial_id}.parquet")
        write_atomic(path, table.select(RESOURCES_SCHEMA.names).cast(RESOURCES_SCHEMA), "resources")

    def write_scaling(self, rows: list[dict]) -> None:
        """Write the run's ``scaling`` rows (a sweep's analysis; the file is replaced each time)."""
        write_atomic(self._path("scaling", "scaling.parquet"), pa.Table.from_pylist(rows, SCALING_SCHEMA),
                     "scaling")

    def read(self, table: str) -> list[dict]:
        """Return this run's stored rows of ``runs``, ``nodes`` or ``trials`` ([] when none yet)."""
        path = self._path(table, RUN_FILES[table])
        return pq.read_table(path).to_pylist() if path.exists() else []

    def stored_trial_ids(self) -> set[str]:
        """Return the ids of trials already stored with status ok (for ``--resume``)."""
        path = self._path("trials", RUN_FILES["trials"])
        if not path.exists():
            return set()
        table = pq.read_table(path, columns=["trial_id", "status"])
        return {t for t, s in zip(table["trial_id"].to_pylist(), table["status"].to_pylist()) if s == "ok"}
