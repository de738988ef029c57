"""Results on object storage: run, sweep, query, compare and report against a moto S3 server on loopback."""

from __future__ import annotations

import json

import pytest
from dataset import run_query
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.store.layout import new_run_id
from orchestrator.store.writer import RunStore

TINY = ["--repetitions", "2", "--min-time", "0.02", "--warmup", "0", "--placement", "none",
        "--param", "cpu.sqrt_mod.elements=1024"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})


# --- refused before Ray starts, nothing written ---------------------------------------------


@pytest.mark.parametrize("bad, fragment", [
    ("foo://bench/r", ("--results 'foo://bench/r' is neither a folder nor a URI pyarrow can open (Unrecognized "
                       "filesystem type in URI: foo://bench/r); pass a folder or a URI such as")),
    ("s3://bench/r?endpoint_override=127.0.0.1:1&bogus=1", "(Unexpected query parameter in S3 URI: 'bogus')"),
])
def test_a_location_pyarrow_cannot_open_is_one_sentence_and_nothing_is_written(bad, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("orchestrator.pipeline.session.ray_session", no_ray)
    for command in (["run", "cpu.sqrt_mod"], ["query", "SELECT 1"], ["compare", "latest~1", "latest"],
                    ["report", "latest"]):
        result = invoke(*command, "--results", bad)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("topobench: error: ") and fragment in result.stderr
        assert result.stderr.count("\n") == 1
        assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # no folder named 's3:' or 'foo:' here


def no_ray(*args, **kwargs):
    raise AssertionError("Ray was started")


def test_a_missing_bucket_is_refused_before_ray_starts(s3_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("orchestrator.pipeline.session.ray_session", no_ray)
    uri = s3_server.uri("r").replace(f"s3://{s3_server.BUCKET}/", "s3://no-such-bucket/")
    result = invoke("run", "cpu.sqrt_mod", "--results", uri)
    assert result.exit_code == 2, result.output
    assert "cannot be written (writing a test object failed: AWS Error NO_SUCH_BUCKET" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_prefix_with_nothing_in_it_is_named(s3_server):
    result = invoke("query", "SELECT 1", "--results", s3_server.uri("nothing-here"))
    assert result.exit_code == 2
    assert "does not exist; run `topobench run` first" in result.stderr


# --- query stays confined -------------------------------------------------------------------


@pytest.fixture
def s3_dataset(s3_results):
    """A dataset of one run with three samples, written straight through the store."""
    from test_query import write_run

    write_run(s3_results, new_run_id(), [1.0, 2.0, 3.0])
    return s3_results


def test_query_reads_the_bucket(s3_dataset):
    result = invoke("query", "SELECT count(*) AS n, sum(value) AS total FROM samples", "--results", s3_dataset,
                    "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"n": 3, "total": 6.0}]


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_parquet('s3://bench/**/*.parquet')",
    "SELECT * FROM 's3://bench/x.parquet'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM glob('s3://bench/*')",
    "SELECT * FROM read_text('~/.aws/credentials')",
])
def test_query_on_object_storage_cannot_reach_anything_else(s3_dataset, sql):
    result = invoke("query", sql, "--results", s3_dataset)
    assert result.exit_code == 2, result.output
    assert "Query reaches outside the results folder" in result.stderr


# --- the whole pipeline on object storage ----------------------------------------------------


@pytest.mark.ray
def test_run_query_compare_and_report_on_object_storage(ray_local, s3_server, s3_results, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with_key = s3_results.replace("s3://", "s3://testing:testing@")  # credentials in the URI: never stored
    for _ in range(2):
        result = invoke("run", "cpu.sqrt_mod", *TINY, "--results", with_key)
        assert result.exit_code == 0, result.output
        assert f"Results: {s3_results} (run_id=" in result.stdout and "testing:testing" not in result.stdout
    runs = run_query(s3_results, "SELECT run_id, status, command, spec FROM runs ORDER BY run_id").to_pylist()
    assert [r["status"] for r in runs] == ["complete", "complete"]
    assert all("testing:testing" not in r["command"] + r["spec"] for r in runs)
    assert json.loads(runs[0]["spec"])["results"] == s3_results
    assert run_query(s3_results, "SELECT count(DISTINCT run_id) AS n FROM samples").to_pylist() == [{"n": 2}]
    result = invoke("compare", "latest~1", "latest", "--results", s3_results)
    assert result.exit_code == 0, result.output
    result = invoke("report", "latest", "--results", s3_results)
    assert result.exit_code == 0, result.output
    (report,) = (tmp_path / "reports").iterdir()  # here: a URI is no folder to write a report into
    assert report.name == runs[1]["run_id"] and (report / "report.html").is_file()
    assert list(tmp_path.iterdir()) == [tmp_path / "reports"]


@pytest.mark.ray
def test_an_interrupted_sweep_resumes_on_object_storage(ray_local, s3_results):
    from orchestrator.pipeline.jobs import run_sweep
    from orchestrator.pipeline.sweep_file import parse_sweep

    # One invocation each: with more, the second trial's finished invocations would be stored (partial) too.
    spec = parse_sweep({"invocations": 1, "repetitions": 2, "min_time": 0.02, "warmup": 0, "placement": "none",
                        "workloads": {"cpu.sqrt_mod": {"elements": [1024, 2048]}}})

    def stop_after_the_first(i, trial, record):
        if record is not None and i == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, None, s3_results, on_trial=stop_after_the_first)
    (run,) = run_query(s3_results, "SELECT run_id, status FROM runs").to_pylist()
    assert run["status"] == "interrupted"
    resumed = run_sweep(spec, None, s3_results, resume=run["run_id"]).session
    assert resumed.status == "complete" and resumed.resumed == 1
    assert run_query(s3_results, "SELECT count(DISTINCT trial_id) AS n FROM samples").to_pylist() == [{"n": 2}]
    store = RunStore(s3_results, run["run_id"])
    assert len(store.manifest.log) == 1 and not store.manifest.obsolete  # compacted into one checkpoint
    assert {e.table for e in store.manifest.entries()} >= {"runs", "nodes", "trials", "samples"}


@pytest.mark.ray
def test_storage_lost_mid_run_keeps_what_finished_and_says_so(ray_local, s3_server, s3_results):
    from orchestrator.pipeline.jobs import run_sweep
    from orchestrator.pipeline.sweep_file import parse_sweep
    from orchestrator.store.writer import StoreError

    spec = parse_sweep({"repetitions": 2, "min_time": 0.02, "warmup": 0, "placement": "none",
                        "workloads": {"cpu.sqrt_mod": {"elements": [1024, 2048, 4096]}}})

    def lose_the_storage_after_the_first(i, trial, record):
        if record is not None and i == 0:
            s3_server.stop()

    try:
        with pytest.raises(StoreError) as caught:
            run_sweep(spec, None, s3_results, on_trial=lose_the_storage_after_the_first)
    finally:
        s3_server.start()
    message = str(caught.value)
    assert message.startswith("The results could not be written while storing trial cpu.sqrt_mod-")
    assert "Could not connect to server" in message and message.count(". ") == 0
    assert message.endswith("what finished before is kept, but the run could not be marked failed either, so it "
                            "reads as interrupted: check that the storage is reachable and writable, then run again.")
    trials = {r["trial_id"] for r in run_query(s3_results, "SELECT DISTINCT trial_id FROM trials").to_pylist()}
    samples = {r["trial_id"] for r in run_query(s3_results, "SELECT DISTINCT trial_id FROM samples").to_pylist()}
    assert len(trials) == 1 and samples == trials  # never samples without their trial
    (run,) = run_query(s3_results, "SELECT run_id, status FROM runs").to_pylist()
    assert run["status"] == "interrupted"
    resumed = run_sweep(spec, None, s3_results, resume=run["run_id"]).session  # the storage is back: go on
    assert resumed.status == "complete" and resumed.resumed == 1
    assert run_query(s3_results, "SELECT count(DISTINCT trial_id) AS n FROM samples").to_pylist() == [{"n": 3}]
