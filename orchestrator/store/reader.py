"""The one reader of the results dataset: DuckDB views over every run's files, confined to the folder.

Each table is one view over one glob per schema version (``layout.globs``) with hive
partitioning, so a query reads only the files it needs (``WHERE run_id = …`` prunes by
folder) and its cost grows with the files it touches, not with a listing of every file.
Versions are joined with ``UNION ALL BY NAME``, so a column an older version lacks reads NULL;
within a version, the tables of ``schemas.UNION_BY_NAME`` are read by name too.
A file that cannot be read (corrupt, empty, or another table's file under a table's name)
makes the reader check every file of the dataset once and leave the bad ones out, naming
them in ``skipped``.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.store import layout
from orchestrator.store.schemas import SCHEMAS, UNION_BY_NAME
from workloads.errors import UserError

_LATEST = re.compile(r"^latest(?:~(\d+))?$")
_READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_HIVE = {table: "hive_partitioning=true, hive_types={'run_id': VARCHAR" + (", 'node': VARCHAR}" if table in
                                                                              layout.TRIAL_TABLES else "}")
         + (", union_by_name=true" if table in UNION_BY_NAME else "") for table in SCHEMAS}


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
    try:
        with duckdb.connect(":memory:") as con:
            return set(con.get_table_names(sql, qualified=False))
    except duckdb.Error:
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
    """A results folder opened for reading; ``rows``, ``table`` and ``query`` run SQL over its views."""

    def __init__(self, root: Path) -> None:
        root = Path(root)
        if not root.exists():
            raise UserError(f"Results folder {str(root)!r} does not exist; run `topobench run` first "
                            "or pass the folder with --results DIR.")
        if not root.is_dir():
            raise UserError(f"--results {str(root)!r} is a file, not a folder; pass the results folder "
                            "(the one `topobench run --results DIR` wrote).")
        self.root = root.resolve()
        self.skipped: list[str] = []
        """Files left out because they could not be read as their table (path: reason)."""
        self._files: dict[str, list[Path]] | None = None  # checked file lists, after a read error
        self._con: duckdb.DuckDBPyConnection | None = None
        self._views: set[str] = set()

    # --- connection -----------------------------------------------------------------------

    def _sources(self, table: str) -> list[str]:
        """Return the read_parquet argument of each schema version present (a glob or a file list)."""
        if self._files is not None:
            files = self._files[table]
            by_version: dict[bool, list[str]] = {}
            for f in files:
                by_version.setdefault(layout.is_current(f), []).append(_quote(str(f)))
            return [f"[{', '.join(v)}]" for v in by_version.values()]
        out = []
        for pattern in layout.globs(table).values():
            path = str(self.root / pattern)
            if next(glob.iglob(path), None) is not None:
                out.append(_quote(path))
        return out

    def _view_sql(self, table: str) -> str:
        drop = " EXCLUDE (node)" if table in layout.TRIAL_TABLES else ""
        parts = [f"SELECT *{drop} FROM read_parquet({src}, {_HIVE[table]})" for src in self._sources(table)]
        parts.append(f"SELECT * FROM _empty_{table}")  # every current column, typed, even with no files
        return " UNION ALL BY NAME ".join(parts)

    def _dead_runs(self, con: duckdb.DuckDBPyConnection) -> pa.Table:
        """Return the ids of runs stored as running whose driver, on this machine, is gone."""
        from cluster.environment import local_host_id

        here = local_host_id()
        running = con.execute("SELECT run_id, host, pid FROM _runs_stored WHERE status = 'running'").fetchall()
        dead = [run_id for run_id, host, pid in running if host == here and (pid is None or not _alive(pid))]
        return pa.table({"run_id": pa.array(dead, pa.string())})

    def connect(self, tables: Iterable[str] | None = None) -> duckdb.DuckDBPyConnection:
        """Return the open DuckDB connection with a view for each of ``tables`` (None: every table).

        Only the views a statement names are built, so a query's cost follows the tables it reads
        (a view binds its files' schemas when created). File access is confined to the folder.
        """
        wanted = set(SCHEMAS) if tables is None else set(tables) & set(SCHEMAS)
        if self._con is not None and wanted <= self._views:
            return self._con
        wanted |= self._views
        self.close()
        con = duckdb.connect(":memory:")
        for table in wanted:
            con.register(f"_empty_{table}", SCHEMAS[table].empty_table())
            name = "_runs_stored" if table == "runs" else table
            con.execute(f"CREATE VIEW {name} AS {self._view_sql(table)}")
        if "runs" in wanted:
            # A run row still says running after its driver died (killed, or the disk filled up).
            con.register("_dead", self._dead_runs(con))
            con.execute("CREATE VIEW runs AS SELECT * REPLACE (CASE WHEN status = 'running' AND run_id IN "
                        "(SELECT run_id FROM _dead) THEN 'interrupted' ELSE status END AS status) FROM _runs_stored")
        # After the views exist: SQL can read nothing outside the folder, install or load nothing.
        con.execute(f"SET allowed_directories=[{_quote(str(self.root) + '/')}]")
        con.execute("SET enable_external_access=false")
        con.execute("SET lock_configuration=true")
        self._con, self._views = con, wanted
        return con

    def close(self) -> None:
        """Close the connection (a later call reconnects)."""
        if self._con is not None:
            self._con.close()
            self._con, self._views = None, set()

    def _check_files(self) -> None:
        """Check every file's footer once; keep the readable ones of the right table, name the rest."""
        self._files = {}
        for table in SCHEMAS:
            kept = []
            for pattern in layout.globs(table).values():
                for name in sorted(glob.glob(str(self.root / pattern))):
                    path = Path(name)
                    try:
                        meta = pq.read_schema(path).metadata or {}
                    except (OSError, pa.ArrowException) as exc:
                        self.skipped.append(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})")
                        continue
                    found = meta.get(b"topobench.table", b"").decode()
                    if found != table:
                        self.skipped.append(f"{path}: holds table {found or 'unknown'!r}, not {table!r}")
                        continue
                    kept.append(path)
            self._files[table] = kept
        self.close()

    # --- reading --------------------------------------------------------------------------

    def table(self, sql: str, args: Sequence[Any] = ()) -> pa.Table:
        """Return the result of a query over the views as an Arrow table."""
        tables = _tables_of(sql)
        try:
            return _arrow(self.connect(tables).sql(sql, params=list(args) or None))
        except (duckdb.IOException, duckdb.InvalidInputException) as exc:
            if self._files is not None or str(self.root) not in str(exc):
                raise
            self._check_files()  # a bad file in the folder: leave it out and try once more
            return _arrow(self.connect(tables).sql(sql, params=list(args) or None))

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Return the rows of a query over the views as dicts."""
        return self.table(sql, args).to_pylist()

    def query(self, sql: str) -> pa.Table:
        """Run one read-only statement a user wrote; return an Arrow table.

        Raises:
            UserError: the SQL does not parse or fails, is not a single read-only statement,
                or reaches outside the folder.
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
            raise UserError(f"Query reaches outside the results folder {str(self.root)!r}; `topobench query` "
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
