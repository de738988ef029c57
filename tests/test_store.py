"""The dataset's layout, its one writer (atomic files, compaction) and its one reader (DuckDB views)."""

from __future__ import annotations

import os
import stat

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.store import layout
from orchestrator.store.reader import Dataset
from orchestrator.store.schemas import SAMPLES_SCHEMA, SCHEMA_VERSION, TRIALS_SCHEMA
from orchestrator.store.writer import FILE_MODE, RunStore, write_atomic
from workloads.errors import UserError

RUN = "20261129T085512Z-1a2b3c"


def samples(run_id: str, trial_id: str, node: str, n: int = 3) -> pa.Table:
    rows = [{"run_id": run_id, "trial_id": trial_id, "workload": "w", "params": "{}", "node_id": node,
             "hostname": "h", "worker_rank": 0, "cpus": [0], "repetition": i, "warmup": False, "iterations": 1,
             "ops": 1, "elapsed_ns": 1, "start_ns": i, "end_ns": i + 1, "metric": "m", "value": float(i),
             "unit": "x"} for i in range(n)]
    return pa.Table.from_pylist(rows, SAMPLES_SCHEMA)


def test_run_ids_are_validated_wherever_a_path_is_built(tmp_path):
    assert layout.validate_run_id(layout.new_run_id()) and layout.new_run_id() != layout.new_run_id()
    for bad in ("../x", "20261129T085512Z-1a2b3c/..", "latest"):
        with pytest.raises(UserError, match="is not valid"):
            layout.run_dir(tmp_path, "runs", bad)
    path = layout.trial_file(tmp_path, "samples", RUN, "n1", "t1")
    assert path == tmp_path / "samples" / f"run_id={RUN}" / "node=n1" / f"v{SCHEMA_VERSION}-trial-t1.parquet"
    assert layout.is_current(path) and not layout.is_current(path.with_name("trial-t1.parquet"))


def test_files_are_atomic_and_follow_the_umask(tmp_path):
    path = tmp_path / "a" / "t.parquet"
    write_atomic(path, pa.table({"x": [1]}), "trials")
    assert stat.S_IMODE(path.stat().st_mode) == FILE_MODE == 0o666 & ~_umask()
    meta = pq.read_schema(path).metadata
    assert meta[b"topobench.table"] == b"trials" and meta[b"topobench.schema_version"] == str(SCHEMA_VERSION).encode()
    assert [p.name for p in path.parent.iterdir()] == ["t.parquet"]  # no temporary left behind


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_trial_file_is_never_replaced(tmp_path):
    store = RunStore(tmp_path, RUN)
    store.write_trial_tables("t1", {"samples": {"n1": samples(RUN, "t1", "n1")}})
    with pytest.raises(FileExistsError, match="trial t1 was already stored"):
        store.write_trial_tables("t1", {"samples": {"n1": samples(RUN, "t1", "n1", n=1)}})
    assert pq.read_table(layout.trial_file(tmp_path, "samples", RUN, "n1", "t1")).num_rows == 3


def test_compaction_merges_each_nodes_trials_into_one_part(tmp_path):
    store = RunStore(tmp_path, RUN)
    for trial in ("t1", "t2", "t3"):
        store.write_trial_tables(trial, {"samples": {"n1": samples(RUN, trial, "n1"),
                                                     "n2": samples(RUN, trial, "n2", n=2)}})
    before = Dataset(tmp_path).table("SELECT * FROM samples ORDER BY node_id, trial_id, repetition")
    store.compact()
    for node in ("n1", "n2"):
        files = sorted(layout.node_dir(tmp_path, "samples", RUN, node).iterdir())
        assert files == [layout.part_file(tmp_path, "samples", RUN, node)]
    after = Dataset(tmp_path).table("SELECT * FROM samples ORDER BY node_id, trial_id, repetition")
    assert after.equals(before) and after.num_rows == 15
    assert not layout.staging_dir(tmp_path).exists()
    # A resumed run adds trial files beside the part; compacting again keeps everything once.
    store.write_trial_tables("t4", {"samples": {"n1": samples(RUN, "t4", "n1")}})
    store.compact()
    assert Dataset(tmp_path).rows("SELECT count(*) AS n FROM samples") == [{"n": 18}]


def test_compaction_keeps_files_topobench_did_not_write(tmp_path):
    store = RunStore(tmp_path, RUN)
    store.write_trial_tables("t1", {"samples": {"n1": samples(RUN, "t1", "n1")}})
    foreign = layout.node_dir(tmp_path, "samples", RUN, "n1") / "notes.txt"
    foreign.write_text("mine")
    store.compact()
    assert foreign.read_text() == "mine"
    assert layout.part_file(tmp_path, "samples", RUN, "n1").exists()


def test_empty_dataset_has_every_view_with_its_columns(tmp_path):
    table = Dataset(tmp_path).table("SELECT * FROM trials")
    assert table.num_rows == 0 and table.column_names == TRIALS_SCHEMA.names


def test_version_1_files_stay_readable_beside_version_2(tmp_path):
    old = "20250101T000000Z-aaaaaa"
    v1 = samples(old, "t0", "n0").drop_columns(["hostname"])  # an older file lacking a column
    path = tmp_path / "samples" / f"run_id={old}" / "node=n0" / "trial-t0.parquet"
    write_atomic(path, v1, "samples")
    RunStore(tmp_path, RUN).write_trial_tables("t1", {"samples": {"n1": samples(RUN, "t1", "n1")}})
    rows = Dataset(tmp_path).rows("SELECT run_id, count(*) AS n, count(hostname) AS hosts FROM samples "
                                  "GROUP BY run_id ORDER BY run_id")
    assert rows == [{"run_id": old, "n": 3, "hosts": 0}, {"run_id": RUN, "n": 3, "hosts": 3}]


def test_bad_files_are_skipped_and_named(tmp_path):
    store = RunStore(tmp_path, RUN)
    store.write_trial_tables("t1", {"samples": {"n1": samples(RUN, "t1", "n1")}})
    other = "20261129T085513Z-2b3c4d"
    RunStore(tmp_path, other).write_trial_tables("t2", {"samples": {"n1": samples(other, "t2", "n1")}})
    corrupt = layout.trial_file(tmp_path, "samples", RUN, "n1", "t9")
    corrupt.write_bytes(b"not parquet at all")
    wrong = layout.run_file(tmp_path, "trials", other)
    write_atomic(wrong, samples(other, "t2", "n1"), "samples")  # another table under the trials name
    dataset = Dataset(tmp_path)
    assert dataset.rows("SELECT count(*) AS n FROM samples") == [{"n": 6}]
    assert dataset.rows("SELECT count(*) AS n FROM trials") == [{"n": 0}]
    assert len(dataset.skipped) == 2
    assert any(str(corrupt) in s and "not a readable Parquet file" in s for s in dataset.skipped)
    assert any(str(wrong) in s and "holds table 'samples', not 'trials'" in s for s in dataset.skipped)


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


def test_a_running_run_whose_driver_is_gone_reads_as_interrupted(tmp_path):
    import subprocess

    from cluster.environment import local_host_id

    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    for run_id, pid in (("20261129T085512Z-000001", os.getpid()), ("20261129T085512Z-000002", dead_pid.pid)):
        RunStore(tmp_path, run_id).write_run({"run_id": run_id, "status": "running", "host": local_host_id(),
                                              "pid": pid})
    rows = Dataset(tmp_path).rows("SELECT run_id, status FROM runs ORDER BY run_id")
    assert [r["status"] for r in rows] == ["running", "interrupted"]
