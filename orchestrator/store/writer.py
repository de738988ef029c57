"""The one committer of a run: append-only parts, a manifest entry per change, compaction when the run ends.

The runner decides when to write (after every trial); this module only serializes. A trial's
parts (its samples and resources per node, its trials, workers and latency rows, the rows of
nodes that changed) are written under new names, then one manifest entry names them all: a
reader sees the whole trial or none of it, and nothing is ever rewritten while the run goes
on, so a run writes bytes in proportion to its trials. ``compact`` merges each table's parts
into one (one per node for samples and resources) when the run ends, in a checkpoint, then
deletes what that made obsolete and whatever a crash left unlisted.

A run of schema 1 or 2 (no manifest) is adopted when it is next written (``--resume``): its
files are listed in a first checkpoint, and compaction rewrites them as current parts.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from orchestrator.store import files, layout, manifest
from orchestrator.store.layout import FileEntry
from orchestrator.store.location import Location, check_writable, describe_failure, resolve_location
from orchestrator.store.manifest import RunManifest
from orchestrator.store.parts import PartWriter, conform, distinct_values
from orchestrator.store.schemas import SCHEMA_VERSION, SCHEMAS
from workloads.errors import StoreError

__all__ = ["FileEntry", "RunStore", "StoreError", "WriteFailed", "append_ack", "check_writable"]


class WriteFailed(StoreError):
    """The results could not be written mid-run: one sentence saying what, why, what is kept and the fix."""

    def __init__(self, what: str, exc: OSError, location: Location, kept: str | None = None) -> None:
        self.what, self.why, self.local, self.kept = what, describe_failure(exc), location.local, kept
        self.full = exc.errno == errno.ENOSPC
        self.marked = True
        """Whether the run's final row (failed) was written after it; the session says."""
        super().__init__(what)

    def __str__(self) -> str:
        fix = ("check that the storage is reachable and writable, then run again" if not self.local else
               "free space or pass another --results DIR, then run again" if self.full else
               "make the folder writable or pass another --results DIR, then run again")
        kept = self.kept or ("what finished before is kept and the run is marked failed" if self.marked else
                             "what finished before is kept, but the run could not be marked failed either, so it "
                             "reads as interrupted")
        return f"The results could not be written while storing {self.what} ({self.why}); {kept}: {fix}."


def append_ack(location: str | os.PathLike | Location, row: Mapping) -> str:
    """Store one acknowledgement as a file of its own, committed by being written whole; return its path.

    ``acks`` belongs to no run, so no manifest commits it (``layout.LOOSE_TABLES``).

    Raises:
        StoreError: the file could not be written (nothing a reader would see is left behind).
    """
    location = resolve_location(location)
    path = layout.ack_path()
    try:
        files.write_parquet(location, path, conform([row], "acks"), "acks")
    except OSError as exc:
        raise StoreError(f"The acknowledgement could not be stored in {location.shown!r} ({describe_failure(exc)}); "
                         "nothing was written: pass a writable --results or free space, then run it again.") from None
    return path


class RunStore:
    """Writes and reads back one run's files under a results location."""

    RESERVE_BYTES = 256 * 1024
    """Space held back at the start of a run, so its final row can be written on a full disk."""

    def __init__(self, location: str | os.PathLike | Location, run_id: str, new: bool = False) -> None:
        """Open run ``run_id``; ``new``: it was just made by ``new_run_id``, so nothing of it is looked for."""
        self.location = resolve_location(location)
        self.run_id = layout.validate_run_id(run_id)
        self.parts = PartWriter(self.location, self.run_id)
        self._manifest: RunManifest | None = RunManifest(self.run_id) if new else None
        self._committer = new  # whether this object commits the run (then its manifest is the latest)

    # --- the manifest -----------------------------------------------------------------------

    @property
    def manifest(self) -> RunManifest:
        """Return the run's manifest: read once, kept up to date by every commit (an adopted old run: unwritten)."""
        if self._manifest is None:
            found = manifest.load(self.location, self.run_id)
            self._manifest = found if found is not None else self._adopt()
        return self._manifest

    def _adopt(self) -> RunManifest:
        """Return a manifest (not written yet) listing a schema 1 or 2 run's files; empty for a new run."""
        adopted = RunManifest(self.run_id)
        for table in (*layout.RUN_TABLES, *layout.TRIAL_TABLES):
            folder = layout.run_folder(table, self.run_id)
            for f in sorted(files.listing(self.location, folder, recursive=True), key=lambda f: f.path):
                if f.is_dir or layout.legacy_version(table, f.path[len(folder) + 1:]) is None:
                    continue
                data = files.read_parquet(self.location, f.path, [c for c in ("trial_id", "node_id")
                                                                  if c in SCHEMAS[table].names])
                adopted.files[f.path] = FileEntry(table, f.path, f.size_bytes, data.num_rows,
                                                  distinct_values(data, "trial_id"), distinct_values(data, "node_id"))
        return adopted

    def commit(self, add: Sequence[FileEntry], remove: Iterable[str] = (), note: str = "",
               checkpoint: bool = False) -> None:
        """Commit parts (written by ``PartWriter`` in any process) and drop ``remove``, in one manifest entry.

        What is no longer listed is deleted afterwards. ``checkpoint`` lists every file, so a
        reader reads this one entry.

        Raises:
            OSError: the entry could not be written: ``add`` is deleted again, nothing changed.
        """
        state, remove = self.manifest, [p for p in remove if p in self.manifest.files]
        self._committer = True
        if not add and not remove and not checkpoint:
            return
        kind = "checkpoint" if checkpoint or (state.seq == 0 and state.files) or state.checkpoint_due() else "commit"
        listed = remove
        if kind == "checkpoint":  # lists every file: what stays, then what is added
            add, listed = [*(e for p, e in state.files.items() if p not in set(remove)), *add], []
        try:
            manifest.write_entry(self.location, state, kind, add, listed, note)
        except OSError:
            files.delete(self.location, [e.path for e in add if e.path not in state.files])
            raise
        files.delete(self.location, [*remove, *state.obsolete])
        state.obsolete = []

    def _failed(self, exc: OSError, what: str, written: Sequence[FileEntry], kept: str | None = None) -> WriteFailed:
        """Delete parts written for a change that failed (best effort) and return the error to raise."""
        files.delete(self.location, [e.path for e in written if e.path not in self.manifest.files])
        return WriteFailed(what, exc, self.location, kept)

    # --- the run row ------------------------------------------------------------------------

    def write_run(self, row: Mapping) -> None:
        """Write (or replace) the run's single ``runs`` row."""
        entry = self.parts.write("runs", [row], "run")
        self.commit([entry], [e.path for e in self.manifest.entries("runs")], f"run {row.get('status')}")

    def _reserve_path(self) -> str:
        return f"{layout.run_folder('runs', self.run_id)}/.reserve"

    def reserve(self) -> None:
        """Hold back ``RESERVE_BYTES`` in the run's folder (a hidden file no reader sees); local folders only."""
        if self.location.local:
            files.write_bytes(self.location, self._reserve_path(), b"\0" * self.RESERVE_BYTES)

    def write_final_run(self, row: Mapping) -> None:
        """Write the run's last row; on a full local disk give back the reserve and try once more.

        Raises:
            OSError: the location cannot be written at all (read-only, unreachable): the row stays as it was.
        """
        try:
            self.write_run(row)
        except OSError:
            if not self.location.local:
                raise
            files.delete(self.location, [self._reserve_path()])
            self.write_run(row)
        if self.location.local:
            files.delete(self.location, [self._reserve_path()])

    # --- one trial ----------------------------------------------------------------------------

    def write_trial_parts(self, trial_id: str, tables: Mapping[str, Mapping[str, pa.Table]],
                          rows: Mapping[str, Sequence[Mapping]]) -> list[FileEntry]:
        """Write one trial's parts, not committed yet: ``tables[table][node_id]`` and ``rows[table]``.

        Raises:
            FileExistsError: this run already committed that trial to one of these tables (two trials, one id).
            OSError: a part could not be written (those written are deleted again).
        """
        tables_written = {t for t, per_node in tables.items() if per_node} | {t for t, r in rows.items() if r}
        if any(trial_id in e.trials for e in self.manifest.files.values() if e.table in tables_written):
            raise FileExistsError(f"trial {trial_id} was already stored in run {self.run_id}")
        written: list[FileEntry] = []
        try:
            for table, per_node in tables.items():
                for node_id, data in per_node.items():
                    written.append(self.parts.write_trial(trial_id, table, data, node_id))
            for table, table_rows in rows.items():
                if table_rows:
                    written.append(self.parts.write_trial(trial_id, table, table_rows))
        except OSError:
            files.delete(self.location, [e.path for e in written])
            raise
        return written

    def commit_trial(self, trial_id: str, tables: Mapping[str, Mapping[str, pa.Table]], trials: Sequence[Mapping],
                     workers: Sequence[Mapping] = (), latency: Sequence[Mapping] = (),
                     nodes: Sequence[Mapping] = (), parts: Sequence[FileEntry] = ()) -> None:
        """Store one finished trial in one manifest entry: its per-node tables, its rows, changed nodes rows.

        ``trials``, ``workers`` and ``latency`` are this trial's rows; ``nodes`` the rows of nodes
        that are new or changed; ``parts`` entries another process wrote for it (``PartWriter``).

        Raises:
            WriteFailed: a write failed; nothing of this trial is visible (its parts are deleted
                as far as the storage lets).
        """
        written: list[FileEntry] = []  # everything to delete again should the change fail
        try:
            trial_parts = self.write_trial_parts(trial_id, tables, {"trials": trials, "workers": workers,
                                                                    "latency": latency})
            written += trial_parts
            node_add, node_remove = self._node_parts(nodes, written)
            self.commit([*trial_parts, *node_add, *parts], node_remove, f"trial {trial_id}")
        except OSError as exc:
            if isinstance(exc, FileExistsError):
                raise
            raise self._failed(exc, f"trial {trial_id}", [*written, *parts]) from None

    def _node_parts(self, rows: Sequence[Mapping], written: list[FileEntry]) -> tuple[list[FileEntry], list[str]]:
        """Write the node rows as one part; return it and the parts it replaces (others rewritten without them).

        One part, not one per node: a trial that first uses a thousand nodes writes one file of node rows, not
        a thousand; a later change to some of them rewrites the rest of that part (a few rows).
        """
        if not rows:
            return [], []
        ids = {r["node_id"] for r in rows}
        add, remove = [self.parts.write("nodes", list(rows), "node")], []
        written.append(add[-1])
        for e in self.manifest.entries("nodes"):
            if set(e.nodes) & ids:
                remove.append(e.path)
                rest = [r for r in self.read_entry(e) if r["node_id"] not in ids]
                if rest:
                    add.append(self.parts.write("nodes", rest, "node"))
                    written.append(add[-1])
        return add, remove

    # --- whole tables at once (compatibility, tests, and tables written once per run) -------------

    def write_trial_tables(self, trial_id: str, tables: Mapping[str, Mapping[str, pa.Table]]) -> list[str]:
        """Write and commit one trial's per-node tables (samples, resources); return the paths.

        Raises:
            FileExistsError: this run already has that trial (two trials, one id).
        """
        written = self.write_trial_parts(trial_id, tables, {})
        self.commit(written, (), f"trial {trial_id}")
        return [e.path for e in written]

    def replace_rows(self, table: str, rows: Sequence[Mapping]) -> None:
        """Make ``rows`` the run's whole ``table`` (one new part; the table's earlier parts are dropped)."""
        old = [e.path for e in self.manifest.entries(table)]
        entries = [self.parts.write(table, rows, "rows")] if rows else []
        self.commit(entries, old, f"{table} replaced")

    def write_nodes(self, rows: Sequence[Mapping]) -> None:
        """Write the run's ``nodes`` rows (all of them)."""
        self.replace_rows("nodes", rows)

    def write_trials(self, rows: Sequence[Mapping]) -> None:
        """Write all ``trials`` rows of the run."""
        self.replace_rows("trials", rows)

    def write_workers(self, rows: Sequence[Mapping]) -> None:
        """Write all ``workers`` rows of the run."""
        self.replace_rows("workers", rows)

    def write_latency(self, rows: Sequence[Mapping]) -> None:
        """Write all ``latency`` rows of the run."""
        self.replace_rows("latency", rows)

    def write_scaling(self, rows: Sequence[Mapping]) -> None:
        """Write the run's ``scaling`` rows (a sweep's analysis) in a checkpoint: the run stays one manifest file."""
        self._replace_in_checkpoint("scaling", rows)

    def write_capacity(self, rows: Sequence[Mapping]) -> None:
        """Write the run's ``capacity`` rows (a capacity search's answer per point) in a checkpoint."""
        self._replace_in_checkpoint("capacity", rows)

    def _replace_in_checkpoint(self, table: str, rows: Sequence[Mapping]) -> None:
        old = [e.path for e in self.manifest.entries(table)]
        if not rows and not old:
            return
        entries = [self.parts.write(table, rows, "rows")] if rows else []
        self.commit(entries, old, f"{table} written", checkpoint=True)

    def open_run(self, row: Mapping, nodes: Sequence[Mapping], keep: Iterable[str] | None = None) -> None:
        """Start the run in one commit: its run row and its nodes' rows; resuming, keep only the trials ``keep``.

        Raises:
            WriteFailed: it could not be written (nothing of it is visible).
        """
        written: list[FileEntry] = []
        try:
            add, remove = self._dropped(set(keep), written) if keep is not None else ([], [])
            add.append(self.parts.write("runs", [row], "run"))
            written.append(add[-1])
            remove += [e.path for e in self.manifest.entries("runs")]
            node_add, node_remove = self._node_parts(nodes, written)
            self.commit([*add, *node_add], [*remove, *node_remove], "run started")
        except OSError as exc:
            raise self._failed(exc, "the run's first rows", written, "nothing of this attempt was stored") from None

    def _dropped(self, keep: set[str], written: list[FileEntry]) -> tuple[list[FileEntry], list[str]]:
        """Return the parts that drop every trial but ``keep``: (rewritten parts, parts they replace).

        A part holding kept and dropped trials alike (a compacted one) is rewritten with the kept rows.
        """
        add, remove = [], []
        for e in self.manifest.entries():
            if not e.trials or set(e.trials) <= keep:
                continue
            remove.append(e.path)
            if set(e.trials) & keep:
                data = files.read_parquet(self.location, e.path)
                data = data.filter(pc.is_in(data["trial_id"], pa.array(sorted(keep), pa.string())))
                folder = e.path.rpartition("/")[0]
                node = folder.rpartition("node=")[2] if e.table in layout.TRIAL_TABLES else None
                add.append(self.parts.write(e.table, data, "part", node))
                written.append(add[-1])
        return add, remove

    # --- reading back -------------------------------------------------------------------------

    def read_entry(self, entry: FileEntry) -> list[dict]:
        """Return the rows of one committed file."""
        return conform(files.read_parquet(self.location, entry.path), entry.table).to_pylist()

    def read(self, table: str) -> list[dict]:
        """Return this run's committed rows of ``table``, in commit order ([] before the first).

        An object that has not committed anything reads the manifest afresh each time (another
        process, or another ``RunStore``, may have committed or compacted meanwhile).
        """
        if not self._committer:
            self._manifest = None
        return [row for e in self.manifest.entries(table) for row in self.read_entry(e)]

    def read_run(self) -> dict | None:
        """Return this run's stored ``runs`` row (a resumed run), or None before the first write."""
        rows = self.read("runs")
        return rows[-1] if rows else None

    def read_nodes(self) -> list[dict]:
        """Return this run's stored ``nodes`` rows."""
        return self.read("nodes")

    def read_trials(self) -> list[dict]:
        """Return this run's stored ``trials`` rows."""
        return self.read("trials")

    def read_workers(self) -> list[dict]:
        """Return this run's stored ``workers`` rows."""
        return self.read("workers")

    def read_latency(self) -> list[dict]:
        """Return this run's stored ``latency`` rows."""
        return self.read("latency")

    def read_trial_ids(self) -> set[str]:
        """Return the ids of this run's stored trials (any status)."""
        return {r["trial_id"] for r in self.read_trials()}

    # --- the end of a run -----------------------------------------------------------------------

    def compact(self) -> None:
        """Merge each table's parts into one (per node for samples and resources) in a checkpoint; clean up.

        Readers see the parts or the merged files, never both or neither. Afterwards the
        merged parts, the obsolete manifest entries and every file of the run that the
        manifest does not list (a crash's leftovers) are deleted; files topobench did not
        write are kept.
        """
        groups: dict[str, list[FileEntry]] = {}
        for e in self.manifest.entries():
            groups.setdefault(e.path.rpartition("/")[0], []).append(e)
        add, remove = [], []
        for folder, entries in groups.items():
            if len(entries) == 1 and entries[0].path.rpartition("/")[2].startswith(f"v{SCHEMA_VERSION}-"):
                continue  # one current file already (an older version's is rewritten)
            table = entries[0].table
            merged = pa.concat_tables([conform(files.read_parquet(self.location, e.path), table) for e in entries])
            node = folder.rpartition("node=")[2] if table in layout.TRIAL_TABLES else None
            add.append(self.parts.write(table, merged, "part", node))
            remove += [e.path for e in entries]
        if add or self.manifest.seq == 0 or len(self.manifest.log) > 1:
            self.commit(add, remove, "compacted", checkpoint=True)
        self.clean()

    def clean(self) -> None:
        """Delete this run's files that its manifest does not list and topobench wrote (never another's files)."""
        listed = set(self.manifest.files) | {self._reserve_path()}
        stray = []
        for table in (*layout.RUN_TABLES, *layout.TRIAL_TABLES):
            for f in files.listing(self.location, layout.run_folder(table, self.run_id), recursive=True):
                if not f.is_dir and f.path not in listed and layout.is_ours(f.path.rpartition("/")[2]):
                    stray.append(f.path)
        stray += [f.path for f in files.listing(self.location, layout.manifest_folder(self.run_id))
                  if f.path.endswith(".tmp")]  # a manifest entry whose rename a crash prevented
        files.delete(self.location, [*stray, *self.manifest.obsolete])
        self.manifest.obsolete = []

