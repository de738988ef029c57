"""`topobench query`: views over every run, output formats, and read-only enforcement."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.store.layout import new_run_id
from orchestrator.store.schemas import SAMPLES_SCHEMA
from orchestrator.store.writer import RunStore


def write_run(root, run_id: str, values: list[float]) -> None:
    rows = [{
        "run_id": run_id, "trial_id": "t1", "workload": "cpu.sqrt_mod", "params": "{}",
        "node_id": "n1", "hostname": "h", "worker_rank": 0, "cpus": [0], "l3_domain": 0,
        "numa_node": 0, "repetition": i, "warmup": False, "iterations": 1, "ops": 10,
        "elapsed_ns": 100, "start_ns": i * 100, "end_ns": i * 100 + 100, "metric": "m",
        "value": v, "unit": "ops/s"} for i, v in enumerate(values)]
    RunStore(root, run_id).write_trial_tables("t1", {"samples": {"n1": pa.Table.from_pylist(rows, SAMPLES_SCHEMA)}})


@pytest.fixture
def dataset(tmp_path):
    write_run(tmp_path, new_run_id(), [1.0, 2.0, 3.0])
    write_run(tmp_path, new_run_id(), [10.0, 20.0])
    return tmp_path


def query(dataset, sql: str, fmt: str = "table"):
    return CliRunner().invoke(app, ["query", sql, "--results", str(dataset), "--format", fmt])


def test_views_span_every_run(dataset):
    result = query(dataset, "SELECT count(DISTINCT run_id) AS runs, sum(value) AS total FROM samples", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"runs": 2, "total": 36.0}]


def test_csv_round_trip(dataset):
    result = query(dataset, "SELECT value FROM samples ORDER BY value", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [float(r["value"]) for r in rows] == [1.0, 2.0, 3.0, 10.0, 20.0]


def test_table_output_and_empty_views(dataset):
    result = query(dataset, "SELECT count(*) AS n FROM trials")
    assert result.exit_code == 0
    assert "0" in result.stdout  # no trials written: an empty view, not an error


def test_issue_example_query(dataset):
    result = query(dataset, "SELECT workload, metric, median(value) FROM samples GROUP BY ALL", "json")
    rows = json.loads(result.stdout)
    assert [list(r.values()) for r in rows] == [["cpu.sqrt_mod", "m", 3.0]]


@pytest.mark.parametrize("sql, fragment", [
    ("SELEC 1", "Query does not parse"),
    ("SELECT nope FROM samples", "Query failed"),
    ("DROP VIEW samples", "read-only"),
    ("CREATE TABLE x AS SELECT 1", "read-only"),
    ("COPY samples TO 'out.csv'", "read-only"),
    ("SELECT 1; SELECT 2", "2 statements"),
])
def test_bad_or_writing_queries_change_nothing(dataset, sql, fragment, monkeypatch):
    monkeypatch.chdir(dataset)
    before = sorted(p for p in dataset.rglob("*"))
    result = query(dataset, sql)
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert sorted(p for p in dataset.rglob("*")) == before


@pytest.mark.parametrize("sql, kind", [
    ("INSTALL httpfs", "an INSTALL"),  # DuckDB files it under LOAD
    ("FORCE INSTALL httpfs", "a FORCE INSTALL"),
    ("ATTACH 'other.db'", "an ATTACH"),
    ("USE memory", "a USE"),  # DuckDB files it under SET
    ("/* keep */ update trials SET n = 1", "an UPDATE"),
    ("WITH a AS (SELECT 1) INSERT INTO trials SELECT * FROM a", "an INSERT"),
    ("LOAD httpfs", "a LOAD"),
])
def test_a_refused_statement_is_named_by_its_own_kind(dataset, sql, kind):
    result = query(dataset, sql)
    assert result.exit_code == 2
    assert result.stderr.strip().endswith(
        f"Query is {kind} statement; `topobench query` is read-only, give a SELECT.")


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('~/.ray/auth_token')",
    "SELECT * FROM glob('/root/*')",
    "SELECT * FROM read_parquet('/etc/*.parquet')",
])
def test_query_cannot_read_outside_the_results_folder(dataset, sql):
    result = query(dataset, sql)
    assert result.exit_code == 2, result.output
    assert "Query reaches outside the results folder" in result.stderr
    assert "root:" not in result.stdout


def test_csv_writes_lists_as_json(dataset):
    result = query(dataset, "SELECT cpus, [1.5::DOUBLE, NULL] AS xs FROM samples LIMIT 1", "csv")
    assert result.exit_code == 0, result.output
    assert list(csv.DictReader(io.StringIO(result.stdout))) == [{"cpus": "[0]", "xs": "[1.5, null]"}]


def test_results_that_is_a_file_is_named_as_such(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("x")
    result = query(path, "SELECT 1")
    assert result.exit_code == 2 and "is a file, not a folder" in result.stderr


def test_views_are_built_for_the_tables_a_statement_names_and_added_as_later_ones_need_them(dataset):
    from orchestrator.store.reader import Dataset

    ds = Dataset(dataset)
    try:
        assert ds.rows("SELECT count(*) AS n FROM samples") == [{"n": 5}]
        assert ds.rows("WITH s AS (SELECT run_id FROM samples) SELECT count(DISTINCT run_id) AS n FROM s") == [{"n": 2}]
        # a USING join cannot be named without binding: every view is built, and it still answers
        assert ds.rows("SELECT count(*) AS n FROM samples JOIN samples AS b USING (run_id, repetition)") == [{"n": 5}]
        assert ds.rows("SELECT count(*) AS n FROM trials") == [{"n": 0}]
        result = query(dataset, "SELECT * FROM read_csv('/etc/passwd')")  # still confined, views or not
        assert result.exit_code == 2 and "outside the results folder" in result.stderr
    finally:
        ds.close()
