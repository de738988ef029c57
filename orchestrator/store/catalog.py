"""Which files of a dataset are committed, table by table: what the reader reads, and nothing else.

For each table, one listing of its folder says which runs have files there. Then, per run:

- a run with a manifest: the files its manifest lists. A finished run's last checkpoint carries
  a digest of each table's files in its name; when the listing shows exactly those files they
  are taken from the listing and no manifest is read (on object storage, a request saved per run);
- a run without one (schema 1 and 2): the files under those versions' names.

Files a manifest does not name (a crash's leftovers, parts not committed yet, another's
files) are never returned. A table of no run (``layout.LOOSE_TABLES``: acks) has no manifest:
its files are committed by being written whole, so its one listing says which they are
(temporaries and files of other names left out), whatever runs the catalog is confined to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.store import files, layout, manifest
from orchestrator.store.location import Location

_VERSION = re.compile(r"^v(\d+)-")
_NO_FILES = layout.files_digest(())


@dataclass(frozen=True, slots=True)
class CommittedFile:
    """A committed file: path relative to the root, size in bytes, its run and the schema version it was written in."""

    path: str
    size_bytes: int
    run_id: str | None
    """None: a file of a table of no run (``layout.LOOSE_TABLES``)."""
    version: int


class Catalog:
    """The committed files of a dataset (of only ``runs``, when given), found once and kept until ``refresh``.

    Raises (every method):
        OSError: the storage could not be listed or read.
    """

    def __init__(self, location: Location, runs: Iterable[str] | None = None) -> None:
        self.location = location
        self.only = None if runs is None else tuple(layout.validate_run_id(r) for r in runs)
        self.problems: list[str] = []
        """Runs left out because their manifest could not be used (one sentence each)."""
        self.refresh()

    def refresh(self) -> None:
        """Forget what was found: the next call lists and reads again (files committed, compacted, deleted)."""
        self._logs: dict[str, list[str]] | None = None
        self._manifests: dict[str, manifest.RunManifest] = {}
        self._unusable: set[str] = set()
        self._files: dict[str, list[CommittedFile]] = {}

    def logs(self) -> dict[str, list[str]]:
        """Return {run id: its manifest entries} of the runs that have a manifest (one listing, kept)."""
        if self._logs is None:
            if self.only is None:
                self._logs = manifest.list_logs(self.location)
            else:
                found = {r: manifest.log_names(self.location, r) for r in self.only}
                self._logs = {r: names for r, names in found.items() if names}
        return self._logs

    def signatures(self) -> dict[str, str]:
        """Return per run a text that changes whenever its committed files change: what a cache of runs checks.

        A run with a manifest: its last entry's name (every commit adds one, with the next seq);
        a run of schema 1 or 2: a digest of its runs files' names and sizes (such a run changes
        only when it is resumed, and then it has a manifest). One listing besides ``logs``.
        """
        logs = self.logs()
        out = {run_id: names[-1].rpartition("/")[2] for run_id, names in logs.items()}
        runs = self.only if self.only is not None else \
            [layout.run_id_of(f.path.rpartition("/")[2]) for f in files.listing(self.location, "runs") if f.is_dir]
        for run_id in runs:
            if run_id is None or run_id in logs:
                continue
            named = [f"{f.path}:{f.size_bytes}" for f in files.listing(self.location, layout.run_folder("runs", run_id))
                     if not f.is_dir and layout.legacy_version("runs", f.path.rpartition("/")[2])]
            if named:
                out[run_id] = f"v1-2:{layout.files_digest(named)}"
        return out

    def manifests(self, run_ids: Iterable[str]) -> dict[str, manifest.RunManifest]:
        """Return the manifests of ``run_ids``, read once each (in parallel on object storage)."""
        logs = self.logs()
        missing = {r: logs[r] for r in run_ids if r not in self._manifests and r not in self._unusable}
        if missing:
            found, problems = manifest.load_many(self.location, missing)
            self._manifests.update(found)
            self._unusable.update(set(missing) - set(found))
            self.problems += [p for p in problems if p not in self.problems]
        return {r: self._manifests[r] for r in run_ids if r in self._manifests}

    def _listing(self, table: str) -> dict[str, list[files.Listed]]:
        """Return {run id: its files of ``table``}, listed (the files, not the manifests, say what exists)."""
        folders = [table] if self.only is None else [layout.run_folder(table, r) for r in self.only]
        out: dict[str, list[files.Listed]] = {}
        for folder in folders:
            for f in files.listing(self.location, folder, recursive=True):
                run_id = layout.run_id_of(f.path.split("/")[1])
                if not f.is_dir and run_id is not None:
                    out.setdefault(run_id, []).append(f)
        return out

    def files(self, table: str) -> list[CommittedFile]:
        """Return the committed files of ``table``, run by run, each run's in commit (or name) order."""
        if table in self._files:
            return self._files[table]
        if table in layout.LOOSE_TABLES:
            self._files[table] = _loose(self.location, table)
            return self._files[table]
        logs, found, unread = self.logs(), [], []
        for run_id, listed in sorted(self._listing(table).items()):
            if run_id not in logs:
                found += _legacy(table, run_id, listed)
                continue
            digests = manifest.last_digests(logs[run_id])
            parts = sorted((f for f in listed if _is_part(f.path)), key=_by_path)
            if digests is not None and digests.get(table, _NO_FILES) == layout.files_digest(f.path for f in parts):
                found += [CommittedFile(f.path, f.size_bytes, run_id, _version(f.path)) for f in parts]
            else:
                unread.append(run_id)
        for run_id, m in self.manifests(unread).items():
            found += [CommittedFile(e.path, e.size_bytes, run_id, _version(e.path)) for e in m.entries(table)]
        self._files[table] = found
        return found


def _loose(location: Location, table: str) -> list[CommittedFile]:
    """Return the files of a table of no run: those directly in its folder under its files' names, by name."""
    out = []
    for f in sorted(files.listing(location, table), key=_by_path):
        version = layout.loose_version(table, f.path.rpartition("/")[2])
        if not f.is_dir and version is not None:
            out.append(CommittedFile(f.path, f.size_bytes, None, version))
    return out


def _legacy(table: str, run_id: str, listed: list[files.Listed]) -> list[CommittedFile]:
    """Return the files of a run written before manifests (schema 1 and 2), by those versions' names."""
    folder = layout.run_folder(table, run_id)
    out = []
    for f in sorted(listed, key=_by_path):
        version = layout.legacy_version(table, f.path[len(folder) + 1:])
        if version:
            out.append(CommittedFile(f.path, f.size_bytes, run_id, version))
    return out


def _is_part(path: str) -> bool:
    name = path.rpartition("/")[2]
    return name.endswith(".parquet") and not name.startswith(".")


def _by_path(f: files.Listed) -> str:
    return f.path


def _version(path: str) -> int:
    """Return the schema version a part was written in (its name says: ``v<N>-...``; 0 for version 1's names)."""
    match = _VERSION.match(path.rpartition("/")[2])
    return int(match.group(1)) if match else 0
