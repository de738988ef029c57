"""The history index: each run's series figures in a few files, so ``history`` over 10,000 runs reads a few.

Reading every run's runs, nodes and trials files costs one file open each (30,000 for 10,000
runs, seconds). The index keeps what history needs of each run (one row per ok trial and
metric, plus the run's code, host fingerprint and environment) in append-only parts under
``_history/`` (``layout.HISTORY``); each call takes the runs' signatures from the catalog
(``Catalog.signatures``: the last manifest entry of each run, so any commit changes it), reads
only runs that are new or changed, and appends them as a new part. Beside it, a memo keeps
what history computed from unchanged inputs (a series' candidates, a candidate's
confirmation). Both are caches, written through ``files`` like any file of the dataset:
deleting the folder costs one slow call, and a location that cannot be written is read
without them.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from orchestrator.store import files, layout
from orchestrator.store.location import Location

INDEX_VERSION = 3
"""Bumped when the rows change: parts of another version are ignored (and rebuilt)."""

MAX_PARTS = 8
"""Parts beyond which the next append merges them all into one."""

INDEX_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("signature", pa.string()),  # the run's signature when indexed (Catalog.signatures)
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

_PART = f"v{INDEX_VERSION}-index-"


def _parts(location: Location) -> list[str]:
    names = [f.path for f in files.listing(location, layout.HISTORY) if not f.is_dir]
    return sorted(p for p in names if p.rpartition("/")[2].startswith(_PART) and p.endswith(".parquet"))


def read_index(location: Location) -> pa.Table:
    """Return the indexed rows, each run's from the newest part that holds it (empty without an index)."""
    for _ in range(3):  # a concurrent merge may remove a part between listing and reading it
        try:
            tables = [files.read_parquet(location, p).select(INDEX_SCHEMA.names).cast(INDEX_SCHEMA)
                      for p in _parts(location)]
            break
        except FileNotFoundError:
            continue
        except (OSError, KeyError, pa.ArrowException):
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


def append_index(location: Location, rows: pa.Table, everything: pa.Table) -> bool:
    """Add a part holding ``rows``; with too many parts, replace them all by ``everything``.

    Returns False when the location cannot be written (the index stays as it was).
    """
    stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"
    try:
        parts = _parts(location)
        merge = len(parts) + 1 > MAX_PARTS
        files.write_parquet(location, layout.history_path(f"{_PART}{stamp}.parquet"),
                            (everything if merge else rows).cast(INDEX_SCHEMA), "history_index")
    except OSError:
        return False
    if merge:
        files.delete(location, parts)
    return True


MEMO_ENTRIES = 20_000
"""Most entries the memo keeps of each kind (the oldest go first)."""

_MEMO = f"v{INDEX_VERSION}-memo.json"


def read_memo(location: Location) -> dict[str, dict[str, Any]]:
    """Return the memo of earlier calls ({kind: {key: value}}); empty when absent or unreadable."""
    try:
        data = files.read_json(location, layout.history_path(_MEMO))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_memo(location: Location, memo: dict[str, dict[str, Any]]) -> bool:
    """Replace the memo (each kind cut to its newest ``MEMO_ENTRIES``); False when it cannot be written."""
    kept = {kind: dict(list(entries.items())[-MEMO_ENTRIES:]) for kind, entries in memo.items()}
    try:
        files.write_json(location, layout.history_path(_MEMO), kept)
    except OSError:
        return False
    return True
