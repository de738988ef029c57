"""Test helper: read a results folder through the product's one reader."""

from __future__ import annotations

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
