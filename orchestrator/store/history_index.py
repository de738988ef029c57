"""The history index: each run's series figures in a few files, so ``history`` over 10,000 runs reads a few.

Reading every run's runs, nodes and trials files costs one file open each (30,000 for 10,000
runs, seconds). The index keeps what history needs of each run (one row per ok trial and
metric, plus the run's code, host fingerprint and environment) in append-only parts under
``_history/`` (the leading underscore keeps Hive readers out); each call lists the runs'
signatures (their runs folder's mtime: the run row is written last, and rewritten on resume),
reads only runs that are new or changed, and appends them as a new part. Beside it,
a memo keeps what history computed from unchanged inputs (a series' candidates, a candidate's
confirmation). Both are caches: deleting the folder costs one slow call. A folder that cannot
be written is read without them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.store.writer import write_atomic

INDEX_VERSION = 2
"""Bumped when the rows change: parts of another version are ignored (and rebuilt)."""

FOLDER = "_history"
MAX_PARTS = 8
"""Parts beyond which the next append merges them all into one."""

INDEX_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("signature", pa.string()),  # mtime (ns) of the run's runs folder when indexed
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("status", pa.string()),
    ("commit", pa.string()),
    ("label", pa.string()),
    ("dirty", pa.bool_()),
    ("fingerprint", pa.string()),  # the host fingerprint (analysis.series.host_fingerprint)
    ("host", pa.string()),  # its fields in words
    ("environment", pa.string()),  # JSON: kernel, microcode, governor, python, ray, numpy
    ("trial_id", pa.string()),  # null on the one row of a run without an ok trial
    ("workload", pa.string()),
    ("workload_version", pa.string()),
    ("params", pa.string()),
    ("placement", pa.string()),
    ("nodes", pa.int32()),
    ("workers", pa.int32()),
    ("threads_per_worker", pa.int32()),
    ("mode", pa.string()),
    ("metric", pa.string()),
    ("unit", pa.string()),
    ("higher_is_better", pa.bool_()),
    ("median", pa.float64()),
    ("ci_low", pa.float64()),
    ("ci_high", pa.float64()),
    ("n", pa.int32()),
    ("cv", pa.float64()),
])


def run_signatures(root: Path) -> dict[str, str]:
    """Return each run's signature: its runs folder's modification time (ns), by run id.

    Every write of the run row renames a new file into that folder, which moves its mtime; one
    stat per run, no listing inside it.
    """
    out: dict[str, str] = {}
    folder = Path(root) / "runs"
    if not folder.is_dir():
        return out
    for run_dir in os.scandir(folder):
        if run_dir.name.startswith("run_id="):
            with contextlib.suppress(OSError):
                out[run_dir.name[len("run_id="):]] = str(run_dir.stat().st_mtime_ns)
    return out


def _parts(root: Path) -> list[Path]:
    return sorted((Path(root) / FOLDER).glob(f"v{INDEX_VERSION}-index-*.parquet"))


def read_index(root: Path) -> pa.Table:
    """Return the indexed rows, each run's from the newest part that holds it (empty without an index)."""
    for _ in range(3):  # a concurrent merge may remove a part between listing and reading it
        try:
            tables = [pq.read_table(p, schema=INDEX_SCHEMA) for p in _parts(root)]
            break
        except FileNotFoundError:
            continue
        except (OSError, pa.ArrowException):
            return INDEX_SCHEMA.empty_table()  # a damaged cache: rebuilt by the next append
    else:
        return INDEX_SCHEMA.empty_table()
    if not tables:
        return INDEX_SCHEMA.empty_table()
    if len(tables) == 1:
        return tables[0]
    newest: dict[str, int] = {}
    for i, t in enumerate(tables):
        newest.update(dict.fromkeys(t["run_id"].to_pylist(), i))
    kept = []
    for n, t in enumerate(tables):
        mask = [newest[r] == n for r in t["run_id"].to_pylist()]
        kept.append(t.filter(pa.array(mask, pa.bool_())))
    return pa.concat_tables(kept)


def append_index(root: Path, rows: pa.Table, everything: pa.Table) -> bool:
    """Add a part holding ``rows``; with too many parts, replace them all by ``everything``.

    Returns False when the folder cannot be written (the index stays as it was).
    """
    parts = _parts(root)
    merge = len(parts) + 1 > MAX_PARTS
    stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"
    path = Path(root) / FOLDER / f"v{INDEX_VERSION}-index-{stamp}.parquet"
    try:
        write_atomic(path, (everything if merge else rows).cast(INDEX_SCHEMA), "history_index")
    except OSError:
        return False
    if merge:
        for p in parts:
            with contextlib.suppress(OSError):
                p.unlink()
    return True


MEMO_ENTRIES = 20_000
"""Most entries the memo keeps of each kind (the oldest go first)."""


def _memo_path(root: Path) -> Path:
    return Path(root) / FOLDER / f"v{INDEX_VERSION}-memo.json"


def read_memo(root: Path) -> dict[str, dict[str, Any]]:
    """Return the memo of earlier calls ({kind: {key: value}}); empty when absent or unreadable."""
    try:
        data = json.loads(_memo_path(root).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_memo(root: Path, memo: dict[str, dict[str, Any]]) -> bool:
    """Replace the memo (each kind cut to its newest ``MEMO_ENTRIES``); False when it cannot be written."""
    kept = {kind: dict(list(entries.items())[-MEMO_ENTRIES:]) for kind, entries in memo.items()}
    path = _memo_path(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(3)}.tmp")
        tmp.write_text(json.dumps(kept))
        os.replace(tmp, path)
    except OSError:
        return False
    return True
