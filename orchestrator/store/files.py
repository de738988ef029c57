"""Whole files in a ``Location``: written so that a reader sees all of one or none, read, listed, deleted.

Locally a file is written under a temporary name and renamed into place (files follow the
umask, so a team can share a folder); on object storage one PUT is already all or nothing.
A failure raises ``OSError`` with the file's full path and a short reason.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from orchestrator.store.schemas import SCHEMA_VERSION

if TYPE_CHECKING:
    from orchestrator.store.location import Location


@dataclass(frozen=True, slots=True)
class Listed:
    """One entry of a listing: its path relative to the root, size in bytes (files) and kind."""

    path: str
    size_bytes: int
    is_dir: bool


def _failed(exc: OSError, location: Location, relative: str) -> OSError:
    # Imported here, not at the top: that keeps the store's chain of imports within the rule.
    from orchestrator.store.location import describe_failure

    reason = describe_failure(exc)
    reason = re.sub(r"^.*Detail: (\[errno \d+\] )?", "", reason)  # pyarrow's "Error writing bytes ... Detail:"
    return OSError(exc.errno, reason, location.path(relative))


def write_bytes(location: Location, relative: str, data: bytes) -> int:
    """Write ``data`` as the whole file ``relative``; return its size in bytes."""
    fs, path = location.fs, location.path(relative)
    try:
        if not location.local:
            with fs.open_output_stream(path) as out:
                out.write(data)
            return len(data)
        parent, _, name = path.rpartition("/")
        fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/.{name}.{secrets.token_hex(4)}.tmp"
        try:
            with fs.open_output_stream(tmp) as out:
                out.write(data)
            fs.move(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                fs.delete_file(tmp)
            raise
    except OSError as exc:
        raise _failed(exc, location, relative) from None
    return len(data)


def parquet_bytes(table: pa.Table, table_name: str) -> bytes:
    """Return ``table`` as a Parquet file with the schema version and table name in its metadata."""
    sink = pa.BufferOutputStream()
    # Without the embedded Arrow schema (a third of a small part): the Parquet types read back the same.
    with pq.ParquetWriter(sink, table.schema, store_schema=False) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata({"topobench.schema_version": str(SCHEMA_VERSION),
                                       "topobench.table": table_name})
    return sink.getvalue().to_pybytes()


def write_parquet(location: Location, relative: str, table: pa.Table, table_name: str) -> int:
    """Write ``table`` as the Parquet file ``relative`` (all of it or nothing); return its size in bytes."""
    return write_bytes(location, relative, parquet_bytes(table, table_name))


def write_json(location: Location, relative: str, data: Any) -> int:
    """Write ``data`` as the JSON file ``relative``; return its size in bytes."""
    return write_bytes(location, relative, json.dumps(data, separators=(",", ":")).encode())


def read_json(location: Location, relative: str) -> Any:
    """Return the parsed JSON file ``relative``."""
    try:
        with location.fs.open_input_stream(location.path(relative)) as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _failed(exc, location, relative) from None


def read_parquet(location: Location, relative: str, columns: Iterable[str] | None = None) -> pa.Table:
    """Return the Parquet file ``relative`` (only ``columns`` when given), without its metadata."""
    try:
        table = pq.read_table(location.path(relative), filesystem=location.fs,
                              columns=list(columns) if columns is not None else None)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _failed(exc, location, relative) from None
    return table.replace_schema_metadata(None)


def listing(location: Location, folder: str, recursive: bool = False) -> list[Listed]:
    """Return what is in ``folder`` (relative); [] when it does not exist."""
    selector = pafs.FileSelector(location.path(folder), recursive=recursive, allow_not_found=True)
    try:
        infos = location.fs.get_file_info(selector)
    except OSError as exc:
        raise _failed(exc, location, folder) from None
    kinds = [i.type for i in infos]  # each read of .type builds an enum: once per entry, not twice
    return [Listed(location.relative(i.path), i.size or 0, kind == pafs.FileType.Directory)
            for i, kind in zip(infos, kinds) if kind in (pafs.FileType.File, pafs.FileType.Directory)]


def delete(location: Location, relatives: Iterable[str]) -> None:
    """Delete files, as far as the storage lets (a file already gone is fine)."""
    for relative in relatives:
        with contextlib.suppress(OSError):
            location.fs.delete_file(location.path(relative))


def exists(location: Location) -> bool | None:
    """Return True when the root is a folder (or a prefix holding objects), False when missing, None: a file."""
    info = location.fs.get_file_info(location.root or "/")
    if info.type == pafs.FileType.File:
        return None
    return info.type == pafs.FileType.Directory
