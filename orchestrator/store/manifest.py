"""A run's manifest: the files of the run that are committed. A file is visible once an entry names it.

Each entry is one small JSON file, ``_manifests/run_id=<id>/<seq>-<commit|checkpoint>.json``
(seq counts from 1), written whole (a rename, or one PUT) and never changed::

    {"format": "topobench-manifest", "version": 1, "run_id": "20261203T060000Z-1a2b3c", "seq": 7,
     "kind": "commit", "committed_at": "2026-12-03T06:01:02.345678+00:00", "note": "trial cpu.sqrt_mod-...",
     "add": [{"table": "samples", "path": "samples/run_id=.../node=.../v3-trial-...-0a1b2c3d4e5f.parquet",
              "size_bytes": 5120, "rows": 40, "trials": ["cpu.sqrt_mod-..."], "nodes": ["..."]}],
     "remove": ["trials/run_id=.../v3-trial-...-5f4e3d2c1b0a.parquet"]}

A ``commit`` removes and adds files; a ``checkpoint`` lists every committed file and makes the
entries before it obsolete (they are deleted after it). The committed set is the last
checkpoint and every later commit, in seq order. One process commits a run (its driver); any
other may write parts and hand it their ``FileEntry``.

A checkpoint's name carries a digest of each table's files (``layout.manifest_path``): a reader
whose listing of a finished run's folders shows exactly those files uses the listing and reads
no manifest at all, which on object storage saves a request per run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from orchestrator.store import files, layout
from orchestrator.store.layout import FileEntry
from orchestrator.store.location import Location

FORMAT = "topobench-manifest"
VERSION = 1


@dataclass
class RunManifest:
    """What a run's manifest says now: its committed files, in commit order, and where its log stands."""

    run_id: str
    files: dict[str, FileEntry] = field(default_factory=dict)
    """Committed files by path, in the order they were committed."""
    seq: int = 0
    """The last entry's seq (0: no manifest yet)."""
    log: list[str] = field(default_factory=list)
    """Paths of the entries that make it up: the last checkpoint (if any) and the commits after it."""
    obsolete: list[str] = field(default_factory=list)
    """Paths of entries before the last checkpoint, not deleted yet."""
    checkpoint_files: int = 0
    """Files the last checkpoint listed."""
    added_since_checkpoint: int = 0

    def entries(self, table: str | None = None) -> list[FileEntry]:
        """Return the committed files (of ``table`` only, when given), in commit order."""
        return [e for e in self.files.values() if table is None or e.table == table]

    def apply(self, data: Mapping[str, Any], name: str) -> None:
        """Apply one manifest entry read from ``name`` (a commit or a checkpoint)."""
        added = [FileEntry.from_json(e, self.run_id) for e in data.get("add", ())]
        if data["kind"] == "checkpoint":
            self.files, self.obsolete, self.log = {}, self.obsolete + self.log, []
            self.checkpoint_files, self.added_since_checkpoint = len(added), 0
        else:
            self.added_since_checkpoint += len(added)
        self.log.append(name)
        for path in data.get("remove", ()):
            self.files.pop(path, None)
        for e in added:
            self.files[e.path] = e
        self.seq = int(data["seq"])

    def checkpoint_due(self) -> bool:
        """Return whether the next commit should be a checkpoint: files added since the last one reach half of it.

        So checkpoints grow geometrically: every checkpoint of a run together is at most a few
        times its last one (bytes written stay linear in trials), and a reader of a running run
        reads a bounded number of commits after it.
        """
        return self.added_since_checkpoint >= max(256, self.checkpoint_files // 2)


def log_names(location: Location, run_id: str) -> list[str]:
    """Return the paths of a run's manifest entries, in seq order ([] when it has none)."""
    named = [(layout.parse_manifest_name(f.path.rpartition("/")[2]), f.path)
             for f in files.listing(location, layout.manifest_folder(run_id)) if not f.is_dir]
    return [path for parsed, path in sorted((p, path) for p, path in named if p is not None)]


def _from_last_checkpoint(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split entry paths (in seq order) into (obsolete ones, ones to read: the last checkpoint onwards)."""
    start = 0
    for i, name in enumerate(names):
        if "-checkpoint" in name.rpartition("/")[2]:
            start = i
    return list(names[:start]), list(names[start:])


def load(location: Location, run_id: str) -> RunManifest | None:
    """Return a run's manifest as it stands; None when the run has none (not started, or of schema 1 or 2).

    An entry deleted meanwhile (a checkpoint made it obsolete) makes it list again and start over.

    Raises:
        OSError: the manifest could not be read.
        ValueError: an entry is not a manifest of this run.
    """
    for _ in range(4):
        names = log_names(location, run_id)
        if not names:
            return None
        obsolete, wanted = _from_last_checkpoint(names)
        try:
            data = [files.read_json(location, name) for name in wanted]
        except FileNotFoundError:
            continue
        return _build(run_id, obsolete, zip(wanted, data))
    raise OSError(f"the manifest of run {run_id} kept changing while it was read")


def _build(run_id: str, obsolete: list[str], entries: Iterable[tuple[str, Any]]) -> RunManifest:
    manifest = RunManifest(run_id, obsolete=obsolete)
    for name, data in entries:
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("run_id") != run_id:
            raise ValueError(f"{name} is not a topobench manifest of run {run_id}")
        manifest.apply(data, name)
    return manifest


def list_logs(location: Location) -> dict[str, list[str]]:
    """Return {run id: paths of its manifest entries, in seq order} of every run that has a manifest."""
    by_run: dict[str, list[str]] = {}
    for f in files.listing(location, layout.MANIFESTS, recursive=True):
        folder, _, name = f.path.rpartition("/")
        run_id = layout.run_id_of(folder.rpartition("/")[2])
        if not f.is_dir and run_id and layout.parse_manifest_name(name):
            by_run.setdefault(run_id, []).append(f.path)
    return {run_id: sorted(names) for run_id, names in by_run.items()}


def last_digests(names: Sequence[str]) -> dict[str, str] | None:
    """Return the table digests the last of a run's entries carries; None when it is not such a checkpoint."""
    parsed = layout.parse_manifest_name(names[-1].rpartition("/")[2]) if names else None
    return parsed[2] if parsed and parsed[1] == "checkpoint" else None


def load_many(location: Location, logs: Mapping[str, Sequence[str]]) -> tuple[dict[str, RunManifest], list[str]]:
    """Return the manifests of the runs in ``logs`` ({run id: entry paths}), and why a run's could not be used.

    On object storage the entries are read in parallel: each one is a request. A run whose
    entries changed meanwhile is listed and read again; a run whose manifest is not usable is
    left out and named.

    Raises:
        OSError: a manifest could not be listed or read.
    """
    split = {run_id: _from_last_checkpoint(names) for run_id, names in logs.items()}
    wanted = [name for _, names in split.values() for name in names]

    def read(name: str) -> Any:
        try:
            return files.read_json(location, name)
        except FileNotFoundError:
            return None  # made obsolete meanwhile: that run is loaded again below

    if location.local or len(wanted) < 2:
        data = dict(zip(wanted, map(read, wanted)))
    else:  # one request each: many at once
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=32) as pool:
            data = dict(zip(wanted, pool.map(read, wanted)))
    out, problems = {}, []
    for run_id, (obsolete, names) in split.items():
        try:
            if any(data[n] is None for n in names):
                found = load(location, run_id)
                if found is not None:
                    out[run_id] = found
                continue
            out[run_id] = _build(run_id, obsolete, ((n, data[n]) for n in names))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"{layout.manifest_folder(run_id)}: the manifest cannot be used ({exc}); run "
                            f"{run_id} is left out")
    return out, problems


def load_all(location: Location) -> tuple[dict[str, RunManifest], list[str]]:
    """Return the manifest of every run that has one, and why a run's could not be used (each run left out)."""
    return load_many(location, list_logs(location))


def write_entry(location: Location, manifest: RunManifest, kind: str, add: Sequence[FileEntry] = (),
                remove: Iterable[str] = (), note: str = "") -> int:
    """Commit one entry (``commit``, or ``checkpoint`` listing every file) and apply it; return its bytes.

    Raises:
        OSError: it could not be written; ``manifest`` is unchanged.
    """
    seq = manifest.seq + 1
    data = {"format": FORMAT, "version": VERSION, "run_id": manifest.run_id, "seq": seq, "kind": kind,
            "committed_at": datetime.now(timezone.utc).isoformat(), "note": note,
            "add": [e.to_json() for e in add], "remove": list(remove)}
    digests = None
    if kind == "checkpoint":
        by_table: dict[str, list[str]] = {}
        for e in add:
            by_table.setdefault(e.table, []).append(e.path)
        digests = {table: layout.files_digest(paths) for table, paths in by_table.items()}
    name = layout.manifest_path(manifest.run_id, seq, kind, digests)
    size = files.write_json(location, name, data)
    manifest.apply(data, name)
    return size
