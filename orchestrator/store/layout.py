"""Where each table's files live under a results root; the only code that builds dataset paths.

Hive-style folders, one per run (and per node for the per-trial tables)::

    runs/run_id=<id>/v2-run.parquet
    nodes/run_id=<id>/v2-nodes.parquet
    trials/run_id=<id>/v2-trials.parquet
    scaling/run_id=<id>/v2-scaling.parquet                        (sweeps)
    samples/run_id=<id>/node=<node_id>/v2-trial-<trial_id>.parquet   (while the run goes on)
    samples/run_id=<id>/node=<node_id>/v2-part.parquet               (after it ends: compacted)
    resources/...                                                 (as samples)
    acks/v2-ack-<UTC time>-<token>.parquet                        (one per acknowledgement, never replaced)

Version 1 datasets used unprefixed names (``run.parquet``, ``trial-<id>.parquet``); their
globs are kept so they stay readable.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone
from pathlib import Path

from orchestrator.store.schemas import SCHEMA_VERSION
from workloads.errors import UserError

RUN_TABLES = ("runs", "nodes", "trials", "workers", "latency", "scaling", "capacity")
"""Tables with one file per run."""
TRIAL_TABLES = ("samples", "resources")
"""Tables with one file per node and trial (compacted to one per node when the run ends)."""
LOOSE_TABLES = ("acks",)
"""Tables of no run: append-only, one file per write, directly under the table's folder."""

_PREFIX = f"v{SCHEMA_VERSION}-"
_RUN_FILE = {t: t for t in RUN_TABLES} | {"runs": "run"}
_RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")
_V1_GLOBS = {"runs": "runs/*/run.parquet", "nodes": "nodes/*/nodes.parquet",
             "trials": "trials/*/trials.parquet", "scaling": "scaling/*/scaling.parquet",
             "samples": "samples/*/*/trial-*.parquet", "resources": "resources/*/*/trial-*.parquet"}


def new_run_id(now: datetime | None = None) -> str:
    """Return a run id: UTC timestamp plus 6 random hex digits (20261129T085512Z-1a2b3c)."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it has the form ``new_run_id`` makes; else raise ``UserError``."""
    if not _RUN_ID.match(run_id):
        raise UserError(f"Run id {run_id!r} is not valid; run ids look like 20261129T085512Z-1a2b3c "
                        "(`topobench query \"SELECT run_id FROM runs\"` lists them).")
    return run_id


def run_dir(root: Path, table: str, run_id: str) -> Path:
    """Return the folder of one run's files of ``table``."""
    return Path(root) / table / f"run_id={validate_run_id(run_id)}"


def run_file(root: Path, table: str, run_id: str) -> Path:
    """Return the file of a one-file-per-run table (runs, nodes, trials, scaling)."""
    return run_dir(root, table, run_id) / f"{_PREFIX}{_RUN_FILE[table]}.parquet"


def node_dir(root: Path, table: str, run_id: str, node_id: str) -> Path:
    """Return the folder of one node's files of a per-trial table (samples, resources)."""
    return run_dir(root, table, run_id) / f"node={node_id}"


def trial_file(root: Path, table: str, run_id: str, node_id: str, trial_id: str) -> Path:
    """Return one node's file of one trial while the run goes on."""
    return node_dir(root, table, run_id, node_id) / f"{_PREFIX}trial-{trial_id}.parquet"


def part_file(root: Path, table: str, run_id: str, node_id: str) -> Path:
    """Return one node's compacted file of a finished run."""
    return node_dir(root, table, run_id, node_id) / f"{_PREFIX}part.parquet"


def ack_file(root: Path, now: datetime | None = None) -> Path:
    """Return a new file for one acknowledgement: sortable by time, never an existing name."""
    now = now or datetime.now(timezone.utc)
    return Path(root) / "acks" / f"{_PREFIX}ack-{now:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.parquet"


def is_current(path: Path) -> bool:
    """Return whether ``path`` is named as this schema version writes files."""
    return path.name.startswith(_PREFIX) and path.suffix == ".parquet"


def globs(table: str) -> dict[int, str]:
    """Return {schema version: glob relative to the root} of every version's files of ``table``."""
    if table in LOOSE_TABLES:
        return {SCHEMA_VERSION: f"{table}/{_PREFIX}*.parquet"}
    current = f"{table}/*/{_PREFIX}*.parquet" if table in RUN_TABLES else f"{table}/*/*/{_PREFIX}*.parquet"
    return {SCHEMA_VERSION: current, **({1: _V1_GLOBS[table]} if table in _V1_GLOBS else {})}


def staging_dir(root: Path) -> Path:
    """Return the folder for files being assembled (outside every table's globs)."""
    return Path(root) / ".staging"
