"""Running a trial on real Ray: host-wide CPU locks between runs, and trial flags from the run phase."""

from __future__ import annotations

import subprocess
import sys

import pytest
from dataset import run_query
from typer.testing import CliRunner

from orchestrator.cli import app

pytestmark = pytest.mark.ray

OTHER_RUN = "20261201T000000Z-aaaaaa"
HOLD = f"""
import sys, time
from cluster.cpu_lock import CpuLock
lock = CpuLock()
assert lock.acquire([0], "{OTHER_RUN}") is None
print("held", flush=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 120)
"""


@pytest.fixture
def other_run_holds_cpu0():
    """Another process (as another topobench run would) holds CPU 0's lock; killed afterwards."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    yield holder.pid
    holder.kill()
    holder.wait()


def run(tmp_path, *extra: str):
    return CliRunner().invoke(app, ["run", "cpu.sqrt_mod", "--placement", "0", "--invocations", "1", "--repetitions", "2",
                                    "--min-time", "0.02", "--param", "cpu.sqrt_mod.elements=2048",
                                    "--results", str(tmp_path), *extra])


def test_a_run_waits_for_cpus_another_run_holds_then_gives_up_naming_it(ray_local, tmp_path, other_run_holds_cpu0):
    result = run(tmp_path, "--lock-timeout", "1")
    assert result.exit_code == 2, result.output
    assert "Waiting for CPUs 0, held by run 20261201T000000Z-aaaaaa" in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("topobench: error: CPU 0 is locked by run 20261201T000000Z-aaaaaa")
    assert f"pid {other_run_holds_cpu0}" in line and "--no-lock" in line
    (row,) = run_query(tmp_path, "SELECT status, trials_total FROM runs").to_pylist()
    assert row == {"status": "interrupted", "trials_total": 1}  # a true status; nothing half-written


def test_a_run_that_waited_for_cpus_measures_once_they_are_free(ray_local, tmp_path):
    # The other run holds CPU 0 for 3 s more, then exits (its lock goes with it): the trial waits, then its
    # workers are prepared and measured on the CPU, now its own.
    holder = subprocess.Popen([sys.executable, "-c", HOLD, "3"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    try:
        result = run(tmp_path, "--lock-timeout", "60")
        released = holder.wait(timeout=60)
    finally:
        holder.kill()
    assert result.exit_code == 0 and released == 0, result.output
    assert "Waiting for CPUs 0, held by run 20261201T000000Z-aaaaaa" in result.stderr
    (row,) = run_query(tmp_path, "SELECT status, flags FROM trials WHERE aggregate_throughput IS NOT NULL").to_pylist()
    assert row["status"] == "ok" and "shared_cpus" not in row["flags"]
    assert run_query(tmp_path, "SELECT count(*) AS n FROM samples WHERE NOT warmup").to_pylist()[0]["n"] >= 2


def test_no_lock_runs_anyway_and_flags_the_shared_cpus(ray_local, tmp_path, other_run_holds_cpu0):
    result = run(tmp_path, "--no-lock")
    assert result.exit_code == 0, result.output
    flags = run_query(tmp_path, "SELECT flags FROM trials WHERE aggregate_throughput IS NOT NULL").to_pylist()
    assert "shared_cpus" in flags[0]["flags"]


def test_a_free_cpu_is_locked_for_the_trial_and_released(ray_local, tmp_path):
    from cluster.cpu_lock import held_by

    result = run(tmp_path)
    assert result.exit_code == 0, result.output
    assert held_by([0]) is None  # released when the trial ended
    flags = run_query(tmp_path, "SELECT flags FROM trials WHERE aggregate_throughput IS NOT NULL").to_pylist()
    assert "shared_cpus" not in flags[0]["flags"]
