"""Serialize query results: CSV (nested values as JSON text), JSON, a terminal table."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import pyarrow as pa
from rich.table import Table


def _plain(value: Any) -> Any:
    """Return ``value`` with non-finite floats as None (JSON has no NaN or infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _cell(value: Any) -> str:
    """Return one CSV/table cell: lists and structs as JSON text, None as empty."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(_plain(value), default=str)
    return str(value)


def table_csv(table: pa.Table) -> str:
    """Return ``table`` as CSV with a header line; list columns become JSON arrays."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow([_cell(v) for v in row.values()])
    return buf.getvalue()


def table_json(table: pa.Table) -> str:
    """Return ``table`` as a JSON array of row objects (non-finite floats become null)."""
    return json.dumps([_plain(r) for r in table.to_pylist()], default=str, indent=1)


def table_rich(table: pa.Table) -> Table:
    """Return ``table`` as a terminal table."""
    out = Table(*table.column_names)
    for row in table.to_pylist():
        out.add_row(*(_cell(v) for v in row.values()))
    return out
