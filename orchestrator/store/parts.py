"""A run's parts: Parquet files written once, under new names, that no reader sees until the manifest names them.

Any process may write parts, given the results location as the user gave it
(``Location.given``) and the run id: a node agent writes its node's samples itself and hands
the returned ``FileEntry`` values to the run's driver, which commits them with the trial
(``RunStore.commit_trial(..., parts=entries)``). A part that is never committed is never read,
and the run's cleanup deletes it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from orchestrator.store import files, layout
from orchestrator.store.layout import FileEntry
from orchestrator.store.location import Location, resolve_location
from orchestrator.store.schemas import SCHEMAS


def conform(data: pa.Table | Sequence[Mapping], table: str) -> pa.Table:
    """Return ``data`` with exactly ``table``'s columns, in order and type; a column it lacks is null."""
    schema = SCHEMAS[table]
    if not isinstance(data, pa.Table):
        return pa.Table.from_pylist(list(data), schema)
    columns = [data[f.name].cast(f.type) if f.name in data.column_names else pa.nulls(data.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def distinct_values(data: pa.Table, column: str) -> tuple[str, ...]:
    """Return the sorted distinct non-null values of ``column`` ((): no such column, or no rows)."""
    if column not in data.column_names or not data.num_rows:
        return ()
    return tuple(sorted(v for v in pc.unique(data[column]).to_pylist() if v is not None))


class PartWriter:
    """Writes parts of one run's tables under a results location."""

    def __init__(self, location: str | os.PathLike | Location, run_id: str) -> None:
        self.location = resolve_location(location)
        self.run_id = layout.validate_run_id(run_id)

    def write(self, table: str, data: pa.Table | Sequence[Mapping], kind: str,
              node_id: str | None = None) -> FileEntry:
        """Write ``data`` as a new part of ``table`` and return its entry, for the driver to commit.

        ``kind`` names what it holds (``layout.part_path``); ``node_id`` is required for samples
        and resources (their folder). Columns are conformed to the table's schema.

        Raises:
            OSError: the part could not be written (nothing of it is left that a reader would see).
        """
        data = conform(data, table)
        path = layout.part_path(table, self.run_id, kind, node_id)
        size = files.write_parquet(self.location, path, data, table)
        return FileEntry(table, path, size, data.num_rows, distinct_values(data, "trial_id"), distinct_values(data, "node_id"))

    def write_trial(self, trial_id: str, table: str, data: pa.Table | Sequence[Mapping],
                    node_id: str | None = None) -> FileEntry:
        """Write one trial's rows of ``table`` (one node's, for samples and resources) as a new part."""
        return self.write(table, data, layout.trial_kind(trial_id), node_id)
