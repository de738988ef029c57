"""Test helper: read a results dataset through the product's one reader, and copy runs within or between datasets."""

from __future__ import annotations

import functools
import os

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
