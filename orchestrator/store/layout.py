"""Where each table's files live under a results root; the only code that builds dataset paths.

Paths are relative to the root (``Location.path`` makes them full). Hive-style folders, one
per run (and per node for the per-trial tables); every file is written once under a name no
other file has (``v<version>-<kind>-<token>.parquet``) and becomes visible when the run's
manifest names it (``store/manifest.py``)::

    _manifests/run_id=<id>/<seq>-<commit|checkpoint[_digests]>.json   which files are committed
    runs/run_id=<id>/v3-run-<token>.parquet                   the run row (replaced on each change)
    nodes/run_id=<id>/v3-node-<token>.parquet                 node rows of one commit (a row replaced when it changes)
    trials/run_id=<id>/v3-trial-<trial_id>-<token>.parquet    one trial's rows (also workers, latency)
    samples/run_id=<id>/node=<node_id>/v3-trial-<trial_id>-<token>.parquet   (also resources)
    <table>/run_id=<id>/[node=<node_id>/]v3-part-<token>.parquet   compacted when the run ends
    scaling/run_id=<id>/v3-rows-<token>.parquet               a whole table's rows at once (also capacity)
    acks/v3-ack-<UTC time>-<token>.parquet                    one acknowledgement (no run's: see below)
    _history/...                                              history's index and memo (caches, history_index.py)

Datasets of schema 1 and 2 have no manifest: every file under their names is committed.
Version 1 used ``run.parquet``, ``trials.parquet``, ``trial-<id>.parquet``; version 2
``v2-run.parquet``, ``v2-trials.parquet``, ``node=<id>/v2-trial-<id>.parquet`` and ``v2-part.parquet``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from orchestrator.store.schemas import SCHEMA_VERSION
from workloads.errors import UserError

RUN_TABLES = ("runs", "nodes", "trials", "workers", "latency", "scaling", "capacity")
"""Tables with files per run."""
TRIAL_TABLES = ("samples", "resources")
"""Tables with files per run and node."""
MANIFESTS = "_manifests"
"""Folder of every run's manifest (its leading underscore keeps Hive readers out of it)."""
LOOSE_TABLES = ("acks",)
"""Tables of no run: one file per row set, directly under the table's folder, never replaced.

No manifest commits them (no run owns them, and any process may add one at any time): a file
is committed by existing, since it is written whole (a rename, or one PUT) under a name no
other file has."""
HISTORY = "_history"
"""Folder of ``history``'s caches (its leading underscore keeps Hive readers out of it)."""

_RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")
_NAME_PART = re.compile(r"^[A-Za-z0-9._-]+$")
_DIGEST = re.compile(r"^[a-z]+\.[0-9a-f]{12}$")
_LOOSE = {"acks": re.compile(r"^v(\d+)-ack-[0-9]{8}T[0-9]{12}Z-[0-9a-f]{8}\.parquet$")}  # {table: its files' names}
_MAX_NAME = 200  # bytes: a file name must stay under 255 on local file systems
_OURS = re.compile(r"^(v\d+-.+\.parquet|run\.parquet|nodes\.parquet|trials\.parquet|scaling\.parquet|"
                   r"trial-.+\.parquet|\..+\.tmp)$")
_LEGACY = {  # {table: {version: name pattern inside a run folder (a node folder for per-trial tables)}}
    "runs": {1: "run.parquet", 2: "v2-run.parquet"}, "nodes": {1: "nodes.parquet", 2: "v2-nodes.parquet"},
    "trials": {1: "trials.parquet", 2: "v2-trials.parquet"}, "workers": {2: "v2-workers.parquet"},
    "latency": {2: "v2-latency.parquet"}, "scaling": {1: "scaling.parquet", 2: "v2-scaling.parquet"},
    "capacity": {2: "v2-capacity.parquet"},
    "samples": {1: "trial-*.parquet", 2: "v2-*.parquet"}, "resources": {1: "trial-*.parquet", 2: "v2-*.parquet"},
}


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


def _name_part(text: str, what: str) -> str:
    if not _NAME_PART.match(text) or text.startswith("."):
        raise ValueError(f"{what} {text!r} cannot be part of a file name (letters, digits, '.', '_', '-' only)")
    return text


def run_folder(table: str, run_id: str) -> str:
    """Return the folder of one run's files of ``table``."""
    return f"{table}/run_id={validate_run_id(run_id)}"


def part_folder(table: str, run_id: str, node_id: str | None = None) -> str:
    """Return the folder a part of ``table`` goes in: the run's, or for samples and resources its node's."""
    if table in TRIAL_TABLES:
        if node_id is None:
            raise ValueError(f"a part of {table} needs the node it came from")
        return f"{run_folder(table, run_id)}/node={_name_part(node_id, 'node id')}"
    return run_folder(table, run_id)


def part_path(table: str, run_id: str, kind: str, node_id: str | None = None) -> str:
    """Return a new, never used path of one part: ``kind`` is ``trial-<id>``, ``part``, ``run``, ``node`` or ``rows``."""
    return f"{part_folder(table, run_id, node_id)}/v{SCHEMA_VERSION}-{_name_part(kind, 'part kind')}-" \
           f"{secrets.token_hex(6)}.parquet"


def trial_kind(trial_id: str) -> str:
    """Return the part kind of one trial's files."""
    return f"trial-{_name_part(trial_id, 'trial id')}"


def manifest_folder(run_id: str) -> str:
    """Return the folder of one run's manifest."""
    return f"{MANIFESTS}/run_id={validate_run_id(run_id)}"


def manifest_path(run_id: str, seq: int, kind: str, digests: Mapping[str, str] | None = None) -> str:
    """Return the path of one run's manifest entry ``seq`` (a ``commit`` or a ``checkpoint``).

    A checkpoint's name may carry ``digests``, {table: ``files_digest`` of its files}: a reader
    that lists the same files needs not read it (``0000000009-checkpoint_runs.0a1b2c3d4e5f_....json``;
    ``_`` alone: no files). Too long a name goes without them.
    """
    name = f"{seq:010d}-{kind}"
    if digests is not None:
        marked = name + "_" + "_".join(f"{table}.{digest}" for table, digest in sorted(digests.items()))
        name = marked if len(marked) <= _MAX_NAME else name
    return f"{manifest_folder(run_id)}/{name}.json"


def parse_manifest_name(name: str) -> tuple[int, str, dict[str, str] | None] | None:
    """Return (seq, kind, digests or None) of a manifest file name; None for anything else (a probe, a temporary)."""
    stem, dot, ext = name.rpartition(".")
    seq, dash, rest = stem.partition("-")
    kind, marked, listed = rest.partition("_")
    if ext != "json" or not dot or not dash or len(seq) != 10 or not seq.isdigit() or \
            kind not in ("commit", "checkpoint"):
        return None
    items = [i for i in listed.split("_") if i]
    if not all(_DIGEST.match(i) for i in items):
        return None
    return int(seq), kind, dict(i.split(".") for i in items) if marked else None


def ack_path(now: datetime | None = None) -> str:
    """Return a new path for one acknowledgement: sortable by time, never an existing name."""
    now = now or datetime.now(timezone.utc)
    return f"acks/v{SCHEMA_VERSION}-ack-{now:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.parquet"


def loose_version(table: str, name: str) -> int | None:
    """Return the schema version of a committed file of a table of no run, by its name; None: not one."""
    match = _LOOSE[table].match(name) if table in _LOOSE else None
    return int(match.group(1)) if match else None


def history_path(name: str) -> str:
    """Return the path of one of ``history``'s cache files (index parts, memo)."""
    return f"{HISTORY}/{_name_part(name, 'history file')}"


def files_digest(paths: Iterable[str]) -> str:
    """Return 12 hex digits naming a set of file paths (relative to the root), whatever their order."""
    return hashlib.sha1("\n".join(sorted(paths)).encode()).hexdigest()[:12]


def run_id_of(folder_name: str) -> str | None:
    """Return the run id of a ``run_id=<id>`` folder name; None for any other name."""
    key, sep, value = folder_name.partition("=")
    return value if sep and key == "run_id" and _RUN_ID.match(value) else None


def legacy_version(table: str, inside_run: str) -> int | None:
    """Return the schema version (1 or 2) of a file of a run without manifest, by its path inside the run folder.

    None: not a file those versions wrote (a newer part, a temporary, a file of someone else's).
    """
    parts = inside_run.split("/")
    if len(parts) != (2 if table in TRIAL_TABLES else 1) or (len(parts) == 2 and not parts[0].startswith("node=")):
        return None
    for version, pattern in _LEGACY[table].items():
        if fnmatch.fnmatchcase(parts[-1], pattern):
            return version
    return None


def is_ours(name: str) -> bool:
    """Return whether a file name is one topobench writes (a part, a file of version 1 or 2, a temporary)."""
    return bool(_OURS.match(name))


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One committed (or to be committed) file: its table, path relative to the root and what it holds."""

    table: str
    path: str
    size_bytes: int
    rows: int
    trials: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the entry as the manifest stores it."""
        return {"table": self.table, "path": self.path, "size_bytes": self.size_bytes, "rows": self.rows,
                "trials": list(self.trials), "nodes": list(self.nodes)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], run_id: str) -> FileEntry:
        """Return the entry a manifest holds, after checking that its path is a file of ``run_id``.

        Raises:
            ValueError: the path lies outside the run's folders (a manifest cannot reach other files).
        """
        entry = cls(str(data["table"]), str(data["path"]), int(data["size_bytes"]), int(data["rows"]),
                    tuple(data.get("trials") or ()), tuple(data.get("nodes") or ()))
        prefix = f"{entry.table}/run_id={run_id}/"
        inside = entry.path[len(prefix):]
        depth = inside.count("/")
        if not (entry.path.startswith(prefix) and inside.endswith(".parquet") and ".." not in inside
                and (depth == 0 or (depth == 1 and inside.startswith("node="))) and entry.table in _LEGACY):
            raise ValueError(f"manifest entry {entry.path!r} is not a file of run {run_id}")
        return entry
