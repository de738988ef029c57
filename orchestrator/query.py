"""Read-only SQL over the results dataset with DuckDB.

Each table of the dataset (runs, nodes, trials, samples, and any later ones such as
scaling) is a view over every run's Parquet files in the results folder. Only SELECT
(and EXPLAIN/DESCRIBE/SUMMARIZE-style reads) is accepted: the dataset is never changed
and no file is written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import pyarrow as pa

from orchestrator.store import SCHEMAS
from workloads.errors import UserError

_READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def connect(results: Path, schemas: dict[str, pa.Schema] | None = None) -> duckdb.DuckDBPyConnection:
    """Return an in-memory DuckDB connection with one view per dataset table.

    A table with no files yet is an empty view with its full schema, so queries over a
    fresh folder return no rows instead of failing.
    """
    con = duckdb.connect(":memory:")
    for name, schema in (schemas or SCHEMAS).items():
        files = sorted((Path(results) / name).glob("run_id=*/**/*.parquet"))
        if files:
            listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
            con.execute(
                f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listing}], union_by_name=true)"
            )
        else:
            con.register(name, schema.empty_table())
    return con


def run_query(results: Path, sql: str) -> pa.Table:
    """Run one read-only statement over the dataset in ``results``; return an Arrow table.

    Raises:
        UserError: the results folder does not exist, the SQL does not parse or fails,
            or it is not a single read-only statement.
    """
    if not Path(results).is_dir():
        raise UserError(f"Results folder {str(results)!r} does not exist; run `topobench run` "
                        "first or pass the folder with --results DIR.")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise UserError(f"Query does not parse: {exc}") from None
    if len(statements) != 1:
        raise UserError(f"Query has {len(statements)} statements; give exactly one SELECT.")
    if statements[0].type not in _READ_ONLY:
        kind = statements[0].type.name
        raise UserError(f"Query is a {kind} statement; `topobench query` is read-only, give a SELECT.")
    con = connect(results)
    try:
        relation = con.sql(sql)
        # DuckDB 2 names it to_arrow_table; 1.x calls it arrow().
        return relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
    except duckdb.Error as exc:
        raise UserError(f"Query failed: {exc}") from None
    finally:
        con.close()


def format_csv(table: pa.Table) -> str:
    """Return ``table`` as CSV text with a header line."""
    import io

    import pyarrow.csv as pacsv

    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    return buf.getvalue().decode()


def format_json(table: pa.Table) -> str:
    """Return ``table`` as a JSON array of row objects (non-finite floats become null)."""
    rows = table.to_pylist()

    def clean(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return json.dumps([{k: clean(v) for k, v in r.items()} for r in rows], default=str, indent=1)
