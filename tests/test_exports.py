"""``topobench export``: each format read back by its real consumer (pyperf, a JSON or XML parser)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import timedelta

import numpy as np
import pytest
from dataset import write_run
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.store.layout import new_run_id

pyperf = pytest.importorskip("pyperf", reason="pip install pyperf (the test extra) to check its format")
runner = CliRunner()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """20 runs: a throughput that drops 10% at run 12, a latency in ms, a size in bytes, a descriptive count."""
    from test_history import T0

    root = tmp_path_factory.mktemp("exports")
    rng = np.random.default_rng(7)
    for i in range(20):
        level = 100.0 if i < 12 else 90.0
        trials = [{"workload": "cpu.x", "metric": "ops_per_s", "rounds": level * (1 + rng.normal(0, 0.01, 8))},
                  {"workload": "cpu.x", "metric": "lat_ms", "unit": "ms", "higher_is_better": False,
                   "rounds": 2.0 * (1 + rng.normal(0, 0.01, 8))},
                  {"workload": "cpu.x", "metric": "rss", "unit": "B", "higher_is_better": False,
                   "rounds": [4096.0] * 8},
                  {"workload": "cpu.x", "metric": "misses", "unit": "", "higher_is_better": None,
                   "rounds": [3.0] * 8}]
        started = T0 + timedelta(hours=i)
        write_run(root, new_run_id(started), started, trials)
    return root


def _export(results, *args):
    out = runner.invoke(app, ["export", *args, "--results", str(results)])
    assert out.exit_code == 0, out.output
    return out


def test_pyperf_loads_it_and_compare_to_runs_on_two(results, tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    _export(results, "latest~19", "latest~18", "latest~17", "--format", "pyperf", "--out", str(old))
    out = _export(results, "latest~2", "latest~1", "latest", "--format", "pyperf", "--out", str(new))
    assert "misses" in out.stderr and "left out" in out.stderr  # descriptive: no pyperf unit
    suite = pyperf.BenchmarkSuite.load(str(old))
    names = sorted(suite.get_benchmark_names())
    assert len(names) == 3 and any(n.endswith("ops_per_s (s per ops)") for n in names)
    throughput = next(b for b in suite.get_benchmarks() if "ops_per_s" in b.get_name())
    assert throughput.get_unit() == "second" and throughput.get_nrun() == 3 and throughput.get_nvalue() == 24
    assert throughput.median() == pytest.approx(1 / 100.0, rel=0.02)  # 1/(100 ops/s) seconds per op
    latency = next(b for b in suite.get_benchmarks() if "lat_ms" in b.get_name())
    assert latency.median() == pytest.approx(0.002, rel=0.02)  # ms to seconds
    assert next(b for b in suite.get_benchmarks() if "rss" in b.get_name()).get_unit() == "byte"
    compared = subprocess.run([sys.executable, "-m", "pyperf", "compare_to", str(old), str(new)],
                              capture_output=True, text=True, check=False)
    assert compared.returncode == 0, compared.stderr
    assert "ops_per_s" in compared.stdout and "slower" in compared.stdout  # 1/0.9: each op takes longer


def test_bmf_carries_the_ci_as_lower_and_upper(results):
    data = json.loads(_export(results, "latest", "--format", "bmf").stdout)
    (bench,) = data
    entry = data[bench]["ops-per-s"]
    assert entry["lower_value"] < entry["value"] < entry["upper_value"]
    assert entry["value"] == pytest.approx(90, rel=0.03)
    assert set(data[bench]) == {"ops-per-s", "lat-ms", "rss", "misses"}
    two = json.loads(_export(results, "latest", "latest~1", "--format", "bmf").stdout)
    assert "lower_value" not in two[bench]["ops-per-s"]  # two runs: no interval over runs


def test_github_action_benchmark_writes_one_list_per_direction(results, tmp_path):
    _export(results, "latest", "--format", "github-action-benchmark", "--out", str(tmp_path / "gab"))
    bigger = json.loads((tmp_path / "gab" / "customBiggerIsBetter.json").read_text())
    smaller = json.loads((tmp_path / "gab" / "customSmallerIsBetter.json").read_text())
    assert [e["unit"] for e in bigger] == ["ops/s"]
    assert sorted(e["unit"] for e in smaller) == ["B", "ms"]
    for entry in bigger + smaller:
        assert set(entry) <= {"name", "unit", "value", "range", "extra"} and isinstance(entry["value"], float)
    assert bigger[0]["range"].startswith("± ")
    bad = runner.invoke(app, ["export", "latest", "--format", "github-action-benchmark", "--results", str(results)])
    assert bad.exit_code == 2 and "give a folder with --out DIR" in bad.stderr


def test_junit_has_one_failing_case_per_open_regression(results):
    root = ET.fromstring(_export(results, "latest", "--format", "junit").stdout.encode())
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    failing = [c for c in cases if c.find("failure") is not None]
    assert len(failing) == 1 and int(suite.get("failures")) == 1 and int(suite.get("tests")) == len(cases) == 4
    failure = failing[0].find("failure")
    assert failure.get("message").startswith("REGRESSION") and "ops_per_s" in failure.text
    assert "confirmation p" in failure.text


def test_export_bad_input(results, tmp_path):
    for args, message in ((["latest", "--format", "csv"], "--format 'csv' is not one of"),
                          (["nope"], "Run id 'nope' is not valid"),
                          (["latest", "--out", str(tmp_path)], "is a folder; give a file name")):
        out = runner.invoke(app, ["export", *args, "--results", str(results)])
        assert out.exit_code == 2 and message in out.stderr, out.output
