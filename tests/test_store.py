"""The dataset's layout, its one writer (append-only parts, a manifest, compaction) and its one reader.

Every test that writes runs twice: on a local folder and on a moto S3 server on loopback.
"""

from __future__ import annotations

import json
import os
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.store import files, layout, manifest
from orchestrator.store.location import resolve_location
from orchestrator.store.parts import PartWriter
from orchestrator.store.reader import Dataset
from orchestrator.store.schemas import SAMPLES_SCHEMA, SCHEMA_VERSION, TRIALS_SCHEMA
from orchestrator.store.writer import RunStore
from workloads.errors import UserError

RUN = "20261129T085512Z-1a2b3c"
OTHER = "20261129T085513Z-2b3c4d"


@pytest.fixture(params=["local", "s3"])
def results(request, tmp_path) -> str:
    """Return an empty dataset: a local folder, or a prefix on the session's moto S3 server."""
    return str(tmp_path / "r") if request.param == "local" else request.getfixturevalue("s3_results")


def samples(run_id: str, trial_id: str, node: str, n: int = 3) -> pa.Table:
    rows = [{"run_id": run_id, "trial_id": trial_id, "workload": "w", "params": "{}", "node_id": node,
             "hostname": "h", "worker_rank": 0, "cpus": [0], "repetition": i, "warmup": False, "iterations": 1,
             "ops": 1, "elapsed_ns": 1, "start_ns": i, "end_ns": i + 1, "metric": "m", "value": float(i),
             "unit": "x"} for i in range(n)]
    return pa.Table.from_pylist(rows, SAMPLES_SCHEMA)


def trial_row(run_id: str, trial_id: str, status: str = "ok") -> dict:
    return {"run_id": run_id, "trial_id": trial_id, "workload": "w", "metric": "m", "status": status}


def listed(results: str) -> dict[str, int]:
    """Return {path relative to the root: size} of every file in the dataset."""
    location = resolve_location(results)
    return {f.path: f.size_bytes for f in files.listing(location, "", recursive=True) if not f.is_dir}


def commit(store: RunStore, trial_id: str, nodes: tuple[str, ...] = ("n1",), status: str = "ok") -> None:
    store.commit_trial(trial_id, {"samples": {n: samples(store.run_id, trial_id, n) for n in nodes}},
                       [trial_row(store.run_id, trial_id, status)],
                       [{"run_id": store.run_id, "trial_id": trial_id, "metric": "m", "worker_rank": 0}])


def test_run_ids_and_names_are_validated_wherever_a_path_is_built():
    assert layout.validate_run_id(layout.new_run_id()) and layout.new_run_id() != layout.new_run_id()
    for bad in ("../x", "20261129T085512Z-1a2b3c/..", "latest"):
        with pytest.raises(UserError, match="is not valid"):
            layout.run_folder("runs", bad)
    path = layout.part_path("samples", RUN, layout.trial_kind("t1"), "n1")
    assert path.startswith(f"samples/run_id={RUN}/node=n1/v{SCHEMA_VERSION}-trial-t1-") and path.endswith(".parquet")
    assert path != layout.part_path("samples", RUN, layout.trial_kind("t1"), "n1")  # never the same name twice
    with pytest.raises(ValueError, match="cannot be part of a file name"):
        layout.part_path("samples", RUN, "part", "../n1")
    assert layout.parse_manifest_name("0000000007-commit.json") == (7, "commit", None)
    assert layout.parse_manifest_name("0000000008-checkpoint_runs.0a1b2c3d4e5f.json") == (
        8, "checkpoint", {"runs": "0a1b2c3d4e5f"})
    assert layout.parse_manifest_name("0000000009-checkpoint_.json") == (9, "checkpoint", {})
    assert layout.parse_manifest_name(".write-check-ab") is None
    assert layout.legacy_version("samples", "node=n1/v2-part.parquet") == 2
    assert layout.legacy_version("samples", "node=n1/trial-t1.parquet") == 1
    assert layout.legacy_version("trials", "v3-trial-t1-abc.parquet") is None


def test_an_entry_outside_its_run_is_refused():
    good = {"table": "samples", "path": f"samples/run_id={RUN}/node=n1/v3-part-ab.parquet", "size_bytes": 1,
            "rows": 1}
    assert layout.FileEntry.from_json(good, RUN).path == good["path"]
    for path in (f"samples/run_id={OTHER}/node=n1/x.parquet", f"samples/run_id={RUN}/../../etc/x.parquet",
                 "/etc/passwd", f"trials/run_id={RUN}/x.parquet"):
        with pytest.raises(ValueError, match="is not a file of run"):
            layout.FileEntry.from_json({**good, "path": path}, RUN)


def test_parts_are_whole_files_with_their_version_and_follow_the_umask(tmp_path):
    location = resolve_location(tmp_path)
    entry = PartWriter(location, RUN).write_trial("t1", "samples", samples(RUN, "t1", "n1"), "n1")
    path = tmp_path / entry.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    meta = pq.read_schema(path).metadata
    assert meta[b"topobench.table"] == b"samples" and meta[b"topobench.schema_version"] == str(SCHEMA_VERSION).encode()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    assert (entry.size_bytes, entry.rows, entry.trials, entry.nodes) == (path.stat().st_size, 3, ("t1",), ("n1",))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_parts_are_invisible_until_a_commit_names_them_all_at_once(results):
    store = RunStore(results, RUN)
    written = store.write_trial_parts("t1", {"samples": {"n1": samples(RUN, "t1", "n1")}},
                                      {"trials": [trial_row(RUN, "t1")]})
    assert len(written) == 2 and all(p in listed(results) for p in (e.path for e in written))
    dataset = Dataset(results)
    assert dataset.rows("SELECT count(*) AS n FROM samples") == [{"n": 0}]  # written, not committed
    store.commit(written, note="trial t1")
    dataset = Dataset(results)
    assert dataset.rows("SELECT count(*) AS n FROM samples") == [{"n": 3}]
    assert dataset.rows("SELECT trial_id FROM trials") == [{"trial_id": "t1"}]


def test_a_crash_mid_trial_leaves_only_unlisted_files_which_the_end_removes(results):
    store = RunStore(results, RUN)
    commit(store, "t1")
    stray = PartWriter(results, RUN).write_trial("t2", "samples", samples(RUN, "t2", "n1"), "n1")  # never committed
    foreign = f"samples/run_id={RUN}/node=n1/notes.txt"
    files.write_bytes(resolve_location(results), foreign, b"mine")
    assert Dataset(results).rows("SELECT DISTINCT trial_id FROM samples") == [{"trial_id": "t1"}]
    RunStore(results, RUN).compact()  # a later process (a resume) ends the run
    left = listed(results)
    assert stray.path not in left and foreign in left  # topobench's stray part goes; another's file stays
    assert Dataset(results).rows("SELECT DISTINCT trial_id FROM samples") == [{"trial_id": "t1"}]


def test_a_failed_commit_leaves_nothing_visible_and_nothing_behind(results, monkeypatch):
    store = RunStore(results, RUN)
    commit(store, "t1")
    before = listed(results)

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device", "manifest")

    monkeypatch.setattr(manifest.files, "write_json", refuse)
    from orchestrator.store.writer import WriteFailed

    with pytest.raises(WriteFailed, match=r"^The results could not be written while storing trial t2 "
                                          r"\(manifest: No space left on device\); what finished before is kept"):
        commit(store, "t2")
    monkeypatch.undo()
    assert listed(results) == before
    assert Dataset(results).rows("SELECT DISTINCT trial_id FROM trials") == [{"trial_id": "t1"}]
    commit(store, "t2")  # the store goes on where it was
    assert Dataset(results).rows("SELECT count(DISTINCT trial_id) AS n FROM samples") == [{"n": 2}]


def test_a_trial_is_never_stored_twice(results):
    store = RunStore(results, RUN)
    store.write_trial_tables("t1", {"samples": {"n1": samples(RUN, "t1", "n1")}})
    with pytest.raises(FileExistsError, match="trial t1 was already stored"):
        store.write_trial_tables("t1", {"samples": {"n1": samples(RUN, "t1", "n1", n=1)}})
    assert Dataset(results).rows("SELECT count(*) AS n FROM samples") == [{"n": 3}]


def test_commits_append_and_never_rewrite(results):
    store = RunStore(results, RUN)
    store.open_run({"run_id": RUN, "status": "running"}, [{"run_id": RUN, "node_id": "n1", "hostname": "h"}])
    sizes = []
    for i in range(12):
        before = listed(results)
        commit(store, f"t{i:02d}")
        after = listed(results)
        assert all(after[p] == size for p, size in before.items())  # nothing written before changed or went
        sizes.append(sum(size for p, size in after.items() if p not in before))
    assert max(sizes) - min(sizes) < 64  # the same bytes for the 12th trial as for the 1st
    assert len(RunStore(results, RUN).manifest.log) == 13  # one entry per change, none rewritten


def test_a_nodes_row_that_changes_replaces_only_that_node(results):
    store = RunStore(results, RUN)
    node = {"run_id": RUN, "hostname": "h"}
    store.open_run({"run_id": RUN, "status": "running"}, [{**node, "node_id": "a"}, {**node, "node_id": "b"}])
    store.commit_trial("t1", {}, [trial_row(RUN, "t1")], nodes=[{**node, "node_id": "b", "clock_offset_ns": 5}])
    rows = Dataset(results).rows("SELECT node_id, clock_offset_ns FROM nodes ORDER BY node_id")
    assert rows == [{"node_id": "a", "clock_offset_ns": None}, {"node_id": "b", "clock_offset_ns": 5}]
    assert len(store.manifest.entries("nodes")) == 2


def test_compaction_merges_each_tables_parts_in_one_checkpoint(results):
    store = RunStore(results, RUN)
    store.write_run({"run_id": RUN, "status": "running"})
    for trial in ("t1", "t2", "t3"):
        commit(store, trial, ("n1", "n2"))
    store.write_run({"run_id": RUN, "status": "complete"})
    query = "SELECT * FROM samples ORDER BY node_id, trial_id, repetition"
    before = Dataset(results).table(query)
    store.compact()
    entries = RunStore(results, RUN).manifest.entries()
    assert sorted((e.table, e.path.rsplit("/", 2)[-2]) for e in entries) == [
        ("runs", f"run_id={RUN}"), ("samples", "node=n1"), ("samples", "node=n2"), ("trials", f"run_id={RUN}"),
        ("workers", f"run_id={RUN}")]
    assert all("-part-" in e.path or e.table == "runs" for e in entries)
    assert set(listed(results)) == {e.path for e in entries} | set(store.manifest.log)  # nothing obsolete is left
    assert len(store.manifest.log) == 1
    after = Dataset(results).table(query)
    assert after.equals(before) and after.num_rows == 18
    # A resumed run adds parts beside the merged ones; compacting again keeps everything once.
    commit(store, "t4")
    store.compact()
    assert Dataset(results).rows("SELECT count(*) AS n, count(DISTINCT trial_id) AS t FROM samples") == [
        {"n": 21, "t": 4}]
    assert Dataset(results).rows("SELECT status FROM runs") == [{"status": "complete"}]


def test_a_finished_run_is_read_from_its_listing_unless_the_listing_differs(results, monkeypatch):
    store = RunStore(results, RUN)
    store.write_run({"run_id": RUN, "status": "running"})
    commit(store, "t1", ("n1", "n2"))
    store.write_final_run({"run_id": RUN, "status": "complete"})
    store.compact()
    real = files.read_json

    def no_manifest(*args):
        raise AssertionError("a manifest was read")

    monkeypatch.setattr(manifest.files, "read_json", no_manifest)  # its checkpoint's name says it all
    assert Dataset(results).rows("SELECT count(*) AS n FROM samples") == [{"n": 6}]
    assert Dataset(results).rows("SELECT status FROM runs") == [{"status": "complete"}]
    monkeypatch.undo()
    PartWriter(results, RUN).write_trial("t2", "samples", samples(RUN, "t2", "n1"), "n1")  # a crash's leftover
    reads = []
    monkeypatch.setattr(manifest.files, "read_json", lambda *args: reads.append(args) or real(*args))
    assert Dataset(results).rows("SELECT DISTINCT trial_id FROM samples") == [{"trial_id": "t1"}]
    assert len(reads) == 1  # the listing no longer matched: the manifest said what is committed


def test_checkpoints_grow_geometrically():
    m = manifest.RunManifest(RUN)
    checkpoints, total = [], 0
    for _ in range(5000):
        if m.checkpoint_due():
            checkpoints.append(len(m.files))
            m.apply({"kind": "checkpoint", "seq": m.seq + 1, "add": [e.to_json() for e in m.files.values()]}, "c")
        entry = layout.FileEntry("trials", f"trials/run_id={RUN}/v3-trial-t{total}-a.parquet", 1, 1)
        m.apply({"kind": "commit", "seq": m.seq + 1, "add": [entry.to_json()]}, "x")
        total += 1
    assert 5 <= len(checkpoints) <= 12  # about log(5000/256)/log(1.5), not 5000/256
    assert sum(checkpoints) <= 3 * total  # every checkpoint together: linear in the files


def test_a_dataset_without_trials_has_every_view_with_its_columns(results):
    RunStore(results, RUN).write_run({"run_id": RUN})
    table = Dataset(results).table("SELECT * FROM trials")
    assert table.num_rows == 0 and table.column_names == TRIALS_SCHEMA.names


def write_legacy(results: str, relative: str, data: pa.Table, table: str) -> None:
    """Write a file the way schema 1 and 2 did: under its final name, no manifest."""
    files.write_parquet(resolve_location(results), relative, data, table)


def test_versions_1_and_2_stay_readable_beside_version_3(results):
    v1, v2 = "20250101T000000Z-aaaaaa", "20250601T000000Z-bbbbbb"
    write_legacy(results, f"samples/run_id={v1}/node=n0/trial-t0.parquet",
                 samples(v1, "t0", "n0").drop_columns(["hostname"]), "samples")  # an older file lacking a column
    write_legacy(results, f"samples/run_id={v2}/node=n0/v2-part.parquet", samples(v2, "t0", "n0"), "samples")
    write_legacy(results, f"samples/run_id={v2}/node=n0/v3-trial-t9-abc.parquet", samples(v2, "t9", "n0"),
                 "samples")  # a newer name in a run without manifest: never committed, never read
    RunStore(results, RUN).write_trial_tables("t1", {"samples": {"n1": samples(RUN, "t1", "n1")}})
    rows = Dataset(results).rows("SELECT run_id, count(*) AS n, count(hostname) AS hosts FROM samples "
                                 "GROUP BY run_id ORDER BY run_id")
    assert rows == [{"run_id": v1, "n": 3, "hosts": 0}, {"run_id": v2, "n": 3, "hosts": 3},
                    {"run_id": RUN, "n": 3, "hosts": 3}]
    assert Dataset(results, runs=[v2]).rows("SELECT DISTINCT run_id FROM samples") == [{"run_id": v2}]


def test_a_version_2_run_is_adopted_when_resumed_and_rewritten_as_parts(results):
    v2 = "20250601T000000Z-bbbbbb"
    write_legacy(results, f"runs/run_id={v2}/v2-run.parquet",
                 pa.Table.from_pylist([{"run_id": v2, "status": "interrupted", "spec": "{}"}]), "runs")
    write_legacy(results, f"trials/run_id={v2}/v2-trials.parquet",
                 pa.Table.from_pylist([trial_row(v2, "t0"), trial_row(v2, "t1", "failed")], TRIALS_SCHEMA),
                 "trials")
    write_legacy(results, f"samples/run_id={v2}/node=n0/v2-trial-t0.parquet", samples(v2, "t0", "n0"), "samples")
    store = RunStore(results, v2)
    assert store.read_run()["status"] == "interrupted" and len(store.read_trials()) == 2
    store.open_run({"run_id": v2, "status": "running"}, [], keep={"t0"})  # t1 failed: it runs again
    assert [r["trial_id"] for r in store.read_trials()] == ["t0"]
    commit(store, "t1")
    store.write_final_run({"run_id": v2, "status": "complete"})
    store.compact()
    assert not any(p.rpartition("/")[2].startswith("v2-") for p in listed(results))  # all rewritten as parts
    dataset = Dataset(results)
    assert dataset.rows("SELECT trial_id, status FROM trials ORDER BY trial_id") == [
        {"trial_id": "t0", "status": "ok"}, {"trial_id": "t1", "status": "ok"}]
    assert dataset.rows("SELECT count(*) AS n FROM samples") == [{"n": 6}]
    assert dataset.run(v2)["status"] == "complete"


def test_bad_files_are_skipped_and_named(results):
    store = RunStore(results, RUN)
    commit(store, "t1")
    commit(RunStore(results, OTHER), "t2")
    location = resolve_location(results)
    corrupt = store.manifest.entries("samples")[0].path
    location.fs.delete_file(location.path(corrupt))
    files.write_bytes(location, corrupt, b"not parquet at all, but as long as a footer would be" * 40)
    v2 = "20250601T000000Z-bbbbbb"
    wrong = f"trials/run_id={v2}/v2-trials.parquet"
    write_legacy(results, wrong, samples(v2, "t3", "n1"), "samples")  # another table under the trials name
    PartWriter(results, "20250101T000000Z-cccccc").write_trial("t4", "samples", samples(RUN, "t4", "n1"), "n1")
    escaping = layout.manifest_path("20250101T000000Z-cccccc", 1, "commit")
    files.write_json(location, escaping, {"format": "topobench-manifest", "run_id": "20250101T000000Z-cccccc",
                                          "seq": 1, "kind": "commit",
                                          "add": [{"table": "samples", "path": "samples/../../secret.parquet",
                                                   "size_bytes": 1, "rows": 1}]})
    dataset = Dataset(results)
    assert dataset.rows("SELECT count(*) AS n FROM samples") == [{"n": 3}]
    assert dataset.rows("SELECT trial_id FROM trials ORDER BY trial_id") == [{"trial_id": "t1"}, {"trial_id": "t2"}]
    assert len(dataset.skipped) == 3, dataset.skipped
    assert any(corrupt in s and "not a readable Parquet file" in s for s in dataset.skipped)
    assert any(wrong in s and "holds table 'samples', not 'trials'" in s for s in dataset.skipped)
    assert any("samples/../../secret.parquet" in s and "is left out" in s for s in dataset.skipped)


def test_another_process_writes_parts_and_the_driver_commits_them(results):
    driver = RunStore(results, RUN)
    agent = PartWriter(str(results), RUN)  # what a node agent gets: the location as given and the run id
    entries = [agent.write_trial("t1", "samples", samples(RUN, "t1", node), node) for node in ("n1", "n2")]
    driver.commit_trial("t1", {}, [trial_row(RUN, "t1")], parts=entries)
    assert Dataset(results).rows("SELECT node_id, count(*) AS n FROM samples GROUP BY ALL ORDER BY 1") == [
        {"node_id": "n1", "n": 3}, {"node_id": "n2", "n": 3}]


@pytest.mark.ray
def test_hundreds_of_runs_query_fast_paths_and_right_answers(ray_local, tmp_path):
    """Copies of one real run: every view answers over all of them, one file per node and table each."""
    from dataset import copy_run
    from typer.testing import CliRunner

    from orchestrator.cli import app
    from orchestrator.store.schemas import SCHEMAS

    result = CliRunner().invoke(app, ["run", "cpu.sqrt_mod", "--invocations", "1", "--repetitions", "3", "--min-time", "0.02",
                                      "--param", "cpu.sqrt_mod.elements=4096", "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (first,) = [p.name.split("=", 1)[1] for p in (tmp_path / "runs").iterdir()]
    per_run = {t: len(list((tmp_path / t / f"run_id={first}").rglob("*.parquet"))) for t in SCHEMAS
               if (tmp_path / t).is_dir()}
    assert per_run == {"runs": 1, "nodes": 1, "trials": 1, "workers": 1, "samples": 1, "resources": 1}  # compacted
    assert len(list((tmp_path / "_manifests" / f"run_id={first}").iterdir())) == 1  # one checkpoint
    ids = [f"20270101T{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}Z-{i:06x}" for i in range(300)]
    for new_id in ids:
        copy_run(tmp_path, first, new_id)
    dataset = Dataset(tmp_path)
    one = dataset.rows("SELECT count(*) AS n FROM samples WHERE run_id = ?", [first])[0]["n"]
    assert dataset.rows("SELECT count(DISTINCT run_id) AS runs, count(*) AS n FROM samples") == [
        {"runs": 301, "n": 301 * one}]
    assert dataset.rows("SELECT count(*) AS n FROM trials WHERE status = 'ok'")[0]["n"] == 301
    for table, schema in SCHEMAS.items():
        if table in per_run:
            assert dataset.table(f"SELECT * FROM {table} LIMIT 1").schema.names == schema.names
    # The copies keep the original's start time: the run id breaks the tie.
    assert dataset.resolve("latest") == max(ids) and dataset.resolve("latest~300") == first
    assert not dataset.skipped


def test_a_running_run_whose_driver_is_gone_reads_as_interrupted(results):
    import subprocess

    from cluster.environment import local_host_id
    from orchestrator.store import live

    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    runs = {"20261129T085512Z-000001": os.getpid(), "20261129T085512Z-000002": dead_pid.pid,
            "20261129T085512Z-000003": os.getpid()}
    for run_id, pid in runs.items():
        RunStore(results, run_id).write_run({"run_id": run_id, "status": "running", "host": local_host_id(),
                                             "pid": pid})
    live.mark_open("20261129T085512Z-000001")  # this process still writes it; 000003 it closed, row unwritten
    try:
        rows = Dataset(results).rows("SELECT run_id, status FROM runs ORDER BY run_id")
    finally:
        live.mark_closed("20261129T085512Z-000001")
    assert [r["status"] for r in rows] == ["running", "interrupted", "interrupted"]


_OLD_NAMES = {1: {"runs": "run.parquet", "nodes": "nodes.parquet", "trials": "trials.parquet",
                  "samples": "trial-{trial}.parquet"},
              2: {"runs": "v2-run.parquet", "nodes": "v2-nodes.parquet", "trials": "v2-trials.parquet",
                  "samples": "v2-part.parquet"}}


def as_written_by(version: int, results: str, run_id: str) -> None:
    """Rewrite a run as schema ``version`` wrote it: its files under that version's names, no manifest."""
    location = resolve_location(results)
    store = RunStore(results, run_id)
    for e in store.manifest.entries():
        data = files.read_parquet(location, e.path)
        folder = e.path.rpartition("/")[0]
        name = _OLD_NAMES[version][e.table].format(trial=e.trials[0] if e.trials else "")
        location.fs.delete_file(location.path(e.path))
        write_legacy(results, f"{folder}/{name}", data, e.table)
    files.delete(location, store.manifest.log)


@pytest.mark.parametrize("version", [1, 2])
def test_runs_written_by_older_versions_compare_as_they_did(results, version):
    from test_compare import RUN_A, RUN_B, noisy, write_run
    from typer.testing import CliRunner

    from orchestrator.cli import app

    write_run(results, RUN_A, noisy(100e6, seed=1))
    write_run(results, RUN_B, noisy(90e6, seed=2))
    expected = CliRunner().invoke(app, ["compare", RUN_A, RUN_B, "--results", results, "--format", "json"])
    for run_id in (RUN_A, RUN_B):
        as_written_by(version, results, run_id)
    assert not [p for p in listed(results) if "/v3-" in p or p.startswith("_manifests/")]
    result = CliRunner().invoke(app, ["compare", RUN_A, RUN_B, "--results", results, "--format", "json"])
    assert result.exit_code == expected.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(expected.stdout)
    # One invocation per side, as every run written before invocations: no verdict (README, Trust and regressions).
    assert [r["verdict"] for r in json.loads(result.stdout)["rows"]] == ["too few samples to tell (invocations 1 vs 1)"]
