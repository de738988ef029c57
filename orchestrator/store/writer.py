"""The one writer of the results dataset: atomic Parquet files, then compaction when a run ends.

The runner decides when to write (after every trial); this module only serializes. A file
is never half-written: each goes to a temporary name and is renamed into place.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.store import layout
from orchestrator.store.schemas import SCHEMA_VERSION, SCHEMAS
from workloads.errors import StoreError, UserError


def _umask() -> int:
    """Return this process's umask (from /proc, which does not change it; else set and restore)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
"""Mode of every dataset file: what the process umask gives any new file, so a team can share a folder."""


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
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600
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
        where = "it" if probe == root else f"its parent {str(probe)!r}"
        raise UserError(f"Results folder {str(root)!r} is not writable (creating a file in {where} failed: "
                        f"{exc.strerror or exc}); pass a writable folder with --results DIR.") from None
    return root


def _store_error(exc: OSError, what: str) -> StoreError:
    where = f"{exc.filename}: " if exc.filename else ""
    return StoreError(f"The results could not be written while storing {what} ({where}{exc.strerror or exc}); "
                      "what finished before is kept and the run is marked failed: free space or pass another "
                      "--results DIR, then run again.")


def append_ack(root: Path, row: Mapping) -> Path:
    """Store one acknowledgement as a file of its own (the ``acks`` table is append-only); return it.

    Raises:
        StoreError: the file could not be written (nothing is left behind).
    """
    path = layout.ack_file(root)
    try:
        write_atomic(path, pa.Table.from_pylist([dict(row)], SCHEMAS["acks"]), "acks")
    except OSError as exc:
        raise StoreError(f"The acknowledgement could not be stored in {str(root)!r} ({exc.strerror or exc}); "
                         "nothing was written: pass a writable --results or free space, then run it again.") from None
    return path


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_LIBC = ctypes.CDLL(None, use_errno=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    renameat2 = getattr(_LIBC, "renameat2", None)
    if renameat2 is None:
        return False
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


class RunStore:
    """Writes one run's files under a results root; every write replaces a whole file."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.root = Path(root)
        self.run_id = layout.validate_run_id(run_id)

    def _write_run_table(self, table: str, rows: Sequence[Mapping]) -> None:
        write_atomic(layout.run_file(self.root, table, self.run_id),
                     pa.Table.from_pylist(list(rows), SCHEMAS[table]), table)

    def write_run(self, row: Mapping) -> None:
        """Write (or replace) the run's single ``runs`` row."""
        self._write_run_table("runs", [row])

    RESERVE_BYTES = 256 * 1024
    """Space held back at the start of a run, so its final row can be written on a full disk."""

    def reserve(self) -> None:
        """Hold back ``RESERVE_BYTES`` in the run's folder (a hidden file no reader globs)."""
        path = layout.run_dir(self.root, "runs", self.run_id) / ".reserve"
        with open(path, "wb") as f:
            f.write(b"\0" * self.RESERVE_BYTES)

    def write_final_run(self, row: Mapping) -> None:
        """Write the run's last row; on a full disk give back the reserve and try once more.

        Raises:
            OSError: the folder cannot be written at all (read-only): the row stays as it was.
        """
        reserve = layout.run_dir(self.root, "runs", self.run_id) / ".reserve"
        try:
            self.write_run(row)
        except OSError:
            reserve.unlink(missing_ok=True)
            self.write_run(row)
        reserve.unlink(missing_ok=True)

    def write_nodes(self, rows: Sequence[Mapping]) -> None:
        """Write the run's ``nodes`` rows, one per Ray node."""
        self._write_run_table("nodes", rows)

    def write_trials(self, rows: Sequence[Mapping]) -> None:
        """Write all ``trials`` rows of the run so far (the file is replaced each time)."""
        self._write_run_table("trials", rows)

    def write_latency(self, rows: Sequence[Mapping]) -> None:
        """Write all ``latency`` rows of the run so far (the file is replaced each time)."""
        self._write_run_table("latency", rows)

    def read_latency(self) -> list[dict]:
        """Return this run's stored ``latency`` rows ([] before the first write)."""
        return self._read_run_table("latency")

    def write_capacity(self, rows: Sequence[Mapping]) -> None:
        """Write the run's ``capacity`` rows (a capacity search's answer per point)."""
        self._write_run_table("capacity", rows)

    def write_workers(self, rows: Sequence[Mapping]) -> None:
        """Write all ``workers`` rows of the run so far (the file is replaced each time)."""
        self._write_run_table("workers", rows)

    def write_scaling(self, rows: Sequence[Mapping]) -> None:
        """Write the run's ``scaling`` rows (a sweep's analysis; the file is replaced each time)."""
        self._write_run_table("scaling", rows)

    def _read_run_table(self, table: str) -> list[dict]:
        path = layout.run_file(self.root, table, self.run_id)
        return pq.read_table(path).to_pylist() if path.exists() else []

    def read_run(self) -> dict | None:
        """Return this run's stored ``runs`` row (a resumed run), or None before the first write."""
        rows = self._read_run_table("runs")
        return rows[0] if rows else None

    def read_nodes(self) -> list[dict]:
        """Return this run's stored ``nodes`` rows ([] before the first write)."""
        return self._read_run_table("nodes")

    def read_workers(self) -> list[dict]:
        """Return this run's stored ``workers`` rows ([] before the first write)."""
        return self._read_run_table("workers")

    def read_trial_ids(self) -> set[str]:
        """Return the ids of this run's stored trials (any status)."""
        return {r["trial_id"] for r in self.read_trials()}

    def read_trials(self) -> list[dict]:
        """Return this run's stored ``trials`` rows ([] before the first write)."""
        return self._read_run_table("trials")

    def write_trial_tables(self, trial_id: str, tables: Mapping[str, Mapping[str, pa.Table]]) -> list[Path]:
        """Write one trial's per-node files: ``tables[table][node_id]`` for samples and resources.

        Returns the files written. A trial's file that already exists is never replaced.

        Raises:
            FileExistsError: this run already has that trial's file (two trials, one id).
        """
        written = []
        for table, per_node in tables.items():
            for node_id, data in per_node.items():
                path = layout.trial_file(self.root, table, self.run_id, node_id, trial_id)
                if path.exists():
                    raise FileExistsError(f"{path} exists: trial {trial_id} was already stored in run {self.run_id}")
                write_atomic(path, data.select(SCHEMAS[table].names).cast(SCHEMAS[table]), table)
                written.append(path)
        return written

    def commit_trial(self, trial_id: str, tables: Mapping[str, Mapping[str, pa.Table]],
                     trials: Sequence[Mapping], workers: Sequence[Mapping], latency: Sequence[Mapping]) -> None:
        """Store one finished trial: its per-node files, then the run's workers, latency and trials rows.

        ``trials``, ``workers`` and ``latency`` are all the run's rows so far, this trial's
        included; the trials file goes last, so a trial is in every table or in none.

        Raises:
            StoreError: a write failed; this trial's files are removed again (as far as the
                file system lets), so no samples are left without their trial.
        """
        written: list[Path] = []
        try:
            written = self.write_trial_tables(trial_id, tables)
            if latency:
                self.write_latency(latency)
            self.write_workers(workers)
            self.write_trials(trials)
        except OSError as exc:
            self._undo(trial_id, written, workers, latency)
            raise _store_error(exc, f"trial {trial_id}") from None

    def _undo(self, trial_id: str, written: Sequence[Path], workers: Sequence[Mapping],
              latency: Sequence[Mapping]) -> None:
        """Remove a trial that could not be stored completely (best effort: space may be short)."""
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            self.write_workers([r for r in workers if r["trial_id"] != trial_id])
            if latency:
                self.write_latency([r for r in latency if r["trial_id"] != trial_id])

    def compact(self) -> None:
        """Merge each node's per-trial files of samples and resources into one part file.

        Atomic for readers where the kernel can swap folders (renameat2): they see either
        the per-trial files or the part file, never both or neither. A folder holding files
        topobench did not write is compacted in place instead, and those files are kept.
        """
        for table in layout.TRIAL_TABLES:
            run_dir = layout.run_dir(self.root, table, self.run_id)
            for node_dir in sorted(run_dir.glob("node=*")) if run_dir.is_dir() else ():
                self._compact_node(table, node_dir)

    def _compact_node(self, table: str, node_dir: Path) -> None:
        node_id = node_dir.name.partition("=")[2]
        part = layout.part_file(self.root, table, self.run_id, node_id)
        ours = sorted(p for p in node_dir.iterdir() if layout.is_current(p))
        if not ours or ours == [part]:
            return
        merged = pa.concat_tables([pq.read_table(p).replace_schema_metadata(None) for p in ours])
        stage = layout.staging_dir(self.root) / f"{self.run_id}-{table}-{secrets.token_hex(4)}"
        staged = stage / node_dir.name
        try:
            write_atomic(staged / part.name, merged, table)
            only_ours = all(layout.is_current(p) for p in node_dir.iterdir())
            if not (only_ours and _exchange(staged, node_dir)):
                os.replace(staged / part.name, part)
                for p in ours:
                    if p != part:
                        p.unlink(missing_ok=True)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            with contextlib.suppress(OSError):
                stage.parent.rmdir()  # only when no other compaction is staging there
