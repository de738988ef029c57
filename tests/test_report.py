"""``topobench report``: Markdown and self-contained HTML with plots, checked in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.render.report import build_report
from orchestrator.store.writer import RunStore

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_PROBE = """<script>window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images', ok + '/' + imgs.length);
  document.body.setAttribute('data-tables', document.querySelectorAll('table').length);
});</script>"""


@pytest.fixture(scope="module")
def real_results(ray_local, tmp_path_factory):
    """Two small real runs: cpu.sqrt_mod plus a memory.random_access sweep, then cpu.sqrt_mod again."""
    root = tmp_path_factory.mktemp("results")
    runner = CliRunner()
    common = ["--invocations", "1", "--repetitions", "5", "--min-time", "0.02",
              "--param", "cpu.sqrt_mod.elements=4096", "--results", str(root)]
    first = runner.invoke(app, ["run", "cpu.sqrt_mod", "memory.random_access",
                                "--param", "memory.random_access.working_set=auto", *common])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["run", "cpu.sqrt_mod", *common])
    assert second.exit_code == 0, second.output
    return root


def _run_ids(root):
    return sorted(p.name.split("=", 1)[1] for p in (root / "runs").glob("run_id=*"))


def _scaling_row(run_id, n, x, **fit):
    return {"run_id": run_id, "workload": "cpu.sqrt_mod", "params": "{}", "dimension": "workers",
            "series": "nodes=1 placement=compact", "mode": "weak", "metric": "element_ops_per_s",
            "unit": "element ops/s", "n": n, "samples": 5, "throughput_median": x,
            "throughput_ci_low": x * 0.98, "throughput_ci_high": x * 1.02, "speedup": x / 100.0,
            "efficiency": x / 100.0 / n, "verdict": "sub-linear", **fit}


def test_report_files_sections_and_markdown(real_results, tmp_path):
    first, second = _run_ids(real_results)
    files = build_report(real_results, first, tmp_path / "rep", vs=second)
    md = files.markdown.read_text()
    for heading in ("## Run", "## Distributions", "## accesses per worker vs working set (memory.random_access)",
                    "## Environment", f"## Comparison: {second} → {first}"):  # report NEW --vs BASE
        assert heading in md
    assert "## Scaling" not in md  # a plain run has no scaling table
    assert "basis: rounds of one invocation (no verdict)" in md  # one invocation per side: no pretending
    names = sorted(p.name for p in files.images)
    assert names[1:] == ["dist_cpu_sqrt_mod.png", "dist_memory_random_access.png",
                         "working_set_memory_random_access.png"]
    assert names[0].startswith("compare_cpu_sqrt_mod")  # both sides' rounds by run and invocation
    for img in files.images:
        assert img.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({img.name})" in md
    html = files.html.read_text()
    assert html.count("src='data:image/png;base64,") == 4 and "src='dist_" not in html


def test_report_with_scaling_table(real_results, tmp_path):
    first, _ = _run_ids(real_results)
    fit = {"amdahl_serial_fraction": 0.05, "usl_lambda": 100.0, "usl_sigma": 0.04, "usl_kappa": 0.001}
    RunStore(real_results, first).write_scaling([_scaling_row(first, n, x, **fit)
                                                 for n, x in ((1, 100.0), (2, 190.0), (4, 350.0), (8, 560.0))])
    try:
        files = build_report(real_results, first, tmp_path / "rep")
    finally:
        shutil.rmtree(real_results / "scaling")
    md = files.markdown.read_text()
    assert "## Scaling" in md and "| cpu.sqrt_mod | nodes=1 placement=compact | 8 |" in md
    assert any(p.name.startswith("scaling_") for p in files.images)


def test_report_cli_and_errors(real_results, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["report", "latest", "--results", str(real_results), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "report.html").exists() and "plot(s)" in result.output
    result = runner.invoke(app, ["report", "../x", "--results", str(real_results)])
    assert result.exit_code == 2 and "Run id '../x' is not valid" in result.output
    result = runner.invoke(app, ["report", "latest", "--results", str(tmp_path / "none")])
    assert result.exit_code == 2 and "does not exist" in result.output


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium); "
                                             "the HTML rendering check needs a headless browser")
def test_report_html_renders_in_headless_chromium(real_results, tmp_path):
    first, second = _run_ids(real_results)
    files = build_report(real_results, first, tmp_path / "rep", vs=second)
    probe = tmp_path / "probe.html"  # the report itself carries no script; a copy gets the probe
    probe.write_text(files.html.read_text().replace("</body>", _PROBE + "</body>"))
    profile = tmp_path / "profile"
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    images = re.search(r'data-images="(\d+)/(\d+)"', out.stdout)
    tables = re.search(r'data-tables="(\d+)"', out.stdout)
    assert images and tables, out.stdout[:500]
    assert images.group(1) == images.group(2) == str(len(files.images))
    assert int(tables.group(1)) >= 4  # run, working set, environment, comparison
    assert "element_ops_per_s" in out.stdout and "Environment" in out.stdout


def test_report_vs_a_run_with_nothing_in_common_writes_nothing(real_results, tmp_path):
    from dataset import copy_run

    _, second = _run_ids(real_results)
    copy_run(real_results, second, second, tmp_path / "r")  # a cpu.sqrt_mod run
    runner = CliRunner()
    other = runner.invoke(app, ["run", "memory.random_access", "--invocations", "1", "--repetitions", "2",
                                "--min-time", "0.02", "--results", str(tmp_path / "r")])
    assert other.exit_code == 0, other.output
    result = runner.invoke(app, ["report", "latest", "--vs", second, "--results", str(tmp_path / "r"),
                                 "--out", str(tmp_path / "rep")])
    assert result.exit_code == 2 and "have no trial in common" in result.stderr, result.output
    assert not (tmp_path / "rep").exists()
