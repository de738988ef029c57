"""The one reader of the results dataset: DuckDB views over the committed files, confined to them.

Each table is a view over exactly its committed files (``store.catalog``), each tagged with
its run id (acks, of no run, are not), so ``WHERE run_id = …`` skips the other runs' files unopened. The list is read
two ways:

- object storage: a ``pyarrow.dataset`` over the files, registered in DuckDB; pyarrow reads
  them through the location's filesystem, and DuckDB itself opens no file and reaches no
  network (its own S3 extension would download itself at run time);
- a local folder: DuckDB's own Parquet reader over the listed paths, confined to the folder
  (``allowed_directories``) — for 1,000 small files it reads in about half the time pyarrow's
  dataset scan takes (``benchmarks/cli_speed.py``).

Either way, once the views exist, external access is off and the configuration locked: a
statement reads the dataset and nothing else. A column an older file lacks reads NULL (within a
schema version, the tables of ``schemas.UNION_BY_NAME`` are read by name). A file that cannot be
read (corrupt, or another table's file) makes the reader check every file once and leave the bad
ones out, naming them in ``skipped``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.store import files, layout
from orchestrator.store.catalog import Catalog, CommittedFile
from orchestrator.store.live import is_open
from orchestrator.store.location import Location, describe_failure, resolve_location
from orchestrator.store.schemas import SCHEMAS, UNION_BY_NAME
from workloads.errors import UserError

if TYPE_CHECKING:
    import pyarrow.dataset as pads

_LATEST = re.compile(r"^latest(?:~(\d+))?$")
_READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_IO_THREADS = 32
"""pyarrow's I/O threads for object storage: many small GETs at once hide each one's latency."""
_HIVE = {table: ("hive_partitioning=false" if table in layout.LOOSE_TABLES else
                 "hive_partitioning=true, hive_types={'run_id': VARCHAR" + (", 'node': VARCHAR}" if table in
                                                                           layout.TRIAL_TABLES else "}"))
         + (", union_by_name=true" if table in UNION_BY_NAME else "") for table in SCHEMAS}
_PARAMETER = re.compile(r"\?|\$\d+")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _alive(pid: int) -> bool:
    """Return whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    # DuckDB 2 names it to_arrow_table; 1.x calls it arrow().
    return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()


def _tables_of(sql: str) -> set[str] | None:
    """Return the names ``sql`` reads from (CTE names excluded); None when that cannot be told."""
    # A prepared parameter cannot be named without its value: NULL stands in for it here.
    for text in (sql, _PARAMETER.sub("NULL", sql)):
        try:
            with duckdb.connect(":memory:") as con:
                return set(con.get_table_names(text, qualified=False))
        except duckdb.Error:
            continue
    return None  # e.g. a USING join, which needs the columns: build every view


def statement_kind(sql: str, type_name: str) -> str:
    """Return a statement's kind as its writer named it: the first keyword (INSTALL, ATTACH, USE), else ``type_name``.

    DuckDB files INSTALL under LOAD and USE under SET; a WITH-led statement is named by its type.
    """
    match = re.match(r"\s*([A-Za-z]+)(?:\s+([A-Za-z]+))?", re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.DOTALL))
    if not match or match[1].upper() == "WITH":
        return type_name
    return f"FORCE {match[2].upper()}" if match[1].upper() == "FORCE" and match[2] else match[1].upper()


class Dataset:
    """A results dataset opened for reading; ``rows``, ``table`` and ``query`` run SQL over its views."""

    def __init__(self, results: str | os.PathLike | Location, runs: Iterable[str] | None = None) -> None:
        """Open the dataset at ``results``; with ``runs``, only those runs' files (cheaper where there are many).

        Raises:
            UserError: the location is malformed, missing, a file, or cannot be read.
        """
        self.location = resolve_location(results)
        self.catalog = Catalog(self.location, runs)
        try:
            found = files.exists(self.location)
        except OSError as exc:
            raise UserError(f"Results location {self.location.shown!r} cannot be read ({describe_failure(exc)}); "
                            "check the endpoint and the credentials, or pass another --results.") from None
        if found is False:
            raise UserError(f"Results folder {str(results) if self.location.local else self.location.shown!r} does "
                            "not exist; run `topobench run` first or pass the folder with --results DIR.")
        if found is None:
            raise UserError(f"--results {str(results)!r} is a file, not a folder; pass the results folder "
                            "(the one `topobench run --results DIR` wrote).")
        self.skipped: list[str] = []
        """Files left out because they could not be read as their table (path: reason)."""
        self._bad: set[str] = set()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._views: set[str] = set()
        if not self.location.local and pa.io_thread_count() < _IO_THREADS:
            pa.set_io_thread_count(_IO_THREADS)

    @property
    def root(self) -> str:
        """Return the dataset's root as messages show it."""
        return self.location.shown

    # --- which files --------------------------------------------------------------------------

    def files(self, table: str) -> list[CommittedFile]:
        """Return the committed files of ``table`` (``store.catalog``), less any found unreadable."""
        try:
            found = self.catalog.files(table)
        except OSError as exc:
            raise UserError(f"The results in {self.location.shown!r} cannot be read ({describe_failure(exc)}); "
                            "check the storage, or pass another --results.") from None
        self.skipped += [p for p in self.catalog.problems if p not in self.skipped]
        return [f for f in found if f.path not in self._bad]

    def _view_sql(self, table: str) -> str:
        """Return the view of ``table`` over its local files: one ``read_parquet`` per schema version, by name."""
        by_version: dict[int, list[str]] = {}
        for f in self.files(table):
            by_version.setdefault(f.version, []).append(_quote(self.location.path(f.path)))
        drop = " EXCLUDE (node)" if table in layout.TRIAL_TABLES else ""
        parts = [f"SELECT *{drop} FROM read_parquet([{', '.join(paths)}], {_HIVE[table]})"
                 for _, paths in sorted(by_version.items())]
        parts.append(f"SELECT * FROM _empty_{table}")  # every current column, typed, even with no files
        return " UNION ALL BY NAME ".join(parts)

    def _arrow_dataset(self, table: str) -> pads.Dataset:
        """Return a pyarrow dataset over the committed files of ``table``, each tagged with its run id."""
        import pyarrow.dataset as pads  # only for object storage: a local query need not load it

        fmt, fs = pads.ParquetFileFormat(), self.location.fs
        fragments = [fmt.make_fragment(self.location.path(f.path), fs, pads.scalar(True) if f.run_id is None
                                       else pads.field("run_id") == f.run_id, file_size=f.size_bytes)
                     for f in self.files(table)]
        return pads.FileSystemDataset(fragments, SCHEMAS[table], fmt, fs)

    # --- connection -----------------------------------------------------------------------

    def _dead_runs(self, con: duckdb.DuckDBPyConnection) -> pa.Table:
        """Return the ids of runs stored as running whose driver, on this machine, is gone (or closed them)."""
        from cluster.environment import local_host_id

        here, me = local_host_id(), os.getpid()
        running = con.execute("SELECT run_id, host, pid FROM _runs_stored WHERE status = 'running'").fetchall()
        dead = [run_id for run_id, host, pid in running
                if host == here and (pid is None or not _alive(pid) or (pid == me and not is_open(run_id)))]
        return pa.table({"run_id": pa.array(dead, pa.string())})

    def connect(self, tables: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
        """Return the open DuckDB connection with a view for each of ``tables`` (None: every table).

        Only the views a statement names are built, so a query's cost follows the tables it reads.
        DuckDB reads only the dataset: the listed files, no other file, no network, no extension.
        """
        wanted = set(SCHEMAS) if tables is None else set(tables) & set(SCHEMAS)
        if self._con is not None and wanted <= self._views:
            return self._con
        wanted |= self._views
        self.close()
        con = duckdb.connect(":memory:")
        for table in sorted(wanted):
            name = "_runs_stored" if table == "runs" else table
            if self.location.local:
                con.register(f"_empty_{table}", SCHEMAS[table].empty_table())
                con.execute(f"CREATE VIEW {name} AS {self._view_sql(table)}")
            else:
                con.register(name, self._arrow_dataset(table))
        if "runs" in wanted:
            # A run row still says running after its driver died (killed, or the disk filled up).
            con.register("_dead", self._dead_runs(con))
            con.execute("CREATE VIEW runs AS SELECT * REPLACE (CASE WHEN status = 'running' AND run_id IN "
                        "(SELECT run_id FROM _dead) THEN 'interrupted' ELSE status END AS status) FROM _runs_stored")
        con.execute("SET enable_progress_bar=false")  # its bar would land in a command's stderr
        # After the views exist: no file outside the folder, no network, no extension, no Python variable.
        if self.location.local:
            con.execute(f"SET allowed_directories=[{_quote(self.location.root + '/')}]")
        con.execute("SET enable_external_access=false")
        con.execute("SET python_enable_replacements=false")  # no Python variable is a table either
        con.execute("SET lock_configuration=true")
        self._con, self._views = con, wanted
        return con

    def close(self) -> None:
        """Close the connection (a later call reconnects)."""
        if self._con is not None:
            self._con.close()
            self._con, self._views = None, set()

    def refresh(self) -> None:
        """Read the manifests again: files committed, compacted or deleted since are seen as they are now."""
        self.close()
        self.catalog.refresh()

    def _check_files(self) -> None:
        """Check every listed file's footer once; leave out the unreadable ones and those of another table."""
        for table in SCHEMAS:
            for f in self.files(table):
                try:
                    meta = pq.read_schema(self.location.path(f.path), filesystem=self.location.fs).metadata or {}
                except (OSError, pa.ArrowException) as exc:
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    self._skip(f, f"not a readable Parquet file ({reason})")
                    continue
                found = meta.get(b"topobench.table", b"").decode()
                if found != table:
                    self._skip(f, f"holds table {found or 'unknown'!r}, not {table!r}")
        self.close()

    def _skip(self, f: CommittedFile, reason: str) -> None:
        self._bad.add(f.path)
        self.skipped.append(f"{self.location.path(f.path) if self.location.local else f.path}: {reason}")

    # --- reading --------------------------------------------------------------------------

    def table(self, sql: str, args: Sequence[Any] = ()) -> pa.Table:
        """Return the result of a query over the views as an Arrow table.

        A file that fails to read makes it read the manifests again (a run compacted meanwhile),
        then check every file and leave the bad ones out, trying once after each.
        """
        tables = _tables_of(sql)
        for recover in (self.refresh, self._check_files, None):
            try:
                return _arrow(self.connect(tables).sql(sql, params=list(args) or None))
            except (duckdb.IOException, duckdb.InvalidInputException) as exc:
                if recover is None or not _is_read_failure(exc):
                    raise
                recover()
        raise AssertionError("unreachable")

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Return the rows of a query over the views as dicts."""
        return self.table(sql, args).to_pylist()

    def query(self, sql: str) -> pa.Table:
        """Run one read-only statement a user wrote; return an Arrow table.

        Raises:
            UserError: the SQL does not parse or fails, is not a single read-only statement,
                or reaches outside the dataset.
        """
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise UserError(f"Query does not parse: {exc}") from None
        if len(statements) != 1:
            raise UserError(f"Query has {len(statements)} statements; give exactly one SELECT.")
        if statements[0].type not in _READ_ONLY:
            kind = statement_kind(statements[0].query, statements[0].type.name)
            raise UserError(f"Query is {'an' if kind[:1] in 'AEIO' or kind[:2] in ('UN', 'UP') else 'a'} {kind} "
                            "statement; `topobench query` is read-only, give a SELECT.")
        try:
            return self.table(sql)
        except duckdb.PermissionException:
            raise UserError(f"Query reaches outside the results folder {self.root!r}; `topobench query` "
                            "reads only the dataset's tables (runs, nodes, trials, samples, ...).") from None
        except duckdb.Error as exc:
            raise UserError(f"Query failed: {exc}") from None

    # --- runs -----------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """Return the run id ``ref`` names: an id, ``latest`` or ``latest~N`` (N complete runs back).

        ``latest`` counts complete runs only, by start time.

        Raises:
            UserError: a malformed id, an id not in the dataset, or ``latest~N`` past the oldest run.
        """
        match = _LATEST.match(ref.strip())
        if match:
            ids = [r["run_id"] for r in self.rows(
                "SELECT run_id FROM runs WHERE status = 'complete' ORDER BY started_at DESC, run_id DESC")]
            back = int(match.group(1) or 0)
            if back >= len(ids):
                raise UserError(f"Run {ref!r} does not exist: the results folder has {len(ids)} complete run(s); "
                                "`topobench query \"SELECT run_id, status FROM runs\"` lists them.")
            return ids[back]
        layout.validate_run_id(ref)
        if not self.rows("SELECT 1 FROM runs WHERE run_id = ?", [ref]):
            raise UserError(f"Run {ref!r} is not in the results folder; `topobench query \"SELECT run_id "
                            "FROM runs\"` lists the runs there, or pass another folder with --results DIR.")
        return ref

    def run(self, run_id: str) -> dict[str, Any] | None:
        """Return the ``runs`` row of ``run_id``; None when it has none."""
        found = self.rows("SELECT * FROM runs WHERE run_id = ?", [run_id])
        return found[0] if found else None

    def trials(self, run_id: str) -> list[dict[str, Any]]:
        """Return every ``trials`` row of ``run_id``, in stored order."""
        return self.rows("SELECT * FROM trials WHERE run_id = ?", [run_id])


def _is_read_failure(exc: duckdb.Error) -> bool:
    """Return whether a DuckDB error comes from pyarrow failing to read a file (not from the SQL)."""
    text = str(exc)
    return any(s in text for s in ("Parquet", "parquet", "No such file", "not found", "Error reading",
                                   "AWS Error", "IOError", "Invalid: "))

