"""Faults mid-run: a full disk, a hung trial, SIGTERM, a workload's own error; nothing lost, true statuses."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dataset import run_query
from typer.testing import CliRunner

from orchestrator.cli import app

pytestmark = pytest.mark.ray


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """Mount a tmpfs at ``path`` for the block; skip the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); needs root in a "
                    "namespace that allows mounts")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_disk_that_fills_mid_run_keeps_what_finished_and_says_so(ray_local, tmp_path):
    from orchestrator.pipeline.jobs import run_sweep
    from orchestrator.pipeline.sweep_file import parse_sweep
    from orchestrator.store.writer import StoreError

    spec = parse_sweep({"invocations": 1, "repetitions": 2, "min_time": 0.02, "warmup": 0, "placement": "none",
                        "workloads": {"cpu.sqrt_mod": {"elements": [1024, 2048, 4096]}}})
    with tmpfs(tmp_path / "small", "size=4m") as results:
        def fill_after_the_first_trial(i, trial, record):
            if record is not None and i == 0:  # leave no byte free for the second trial
                # Unbuffered: a buffered file would fail again on close, flushing what did not fit.
                with open(results / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * 65536)

        with pytest.raises(StoreError, match=r"The results could not be written while storing trial .*"
                                             r"No space left on device.*the run is marked failed"):
            run_sweep(spec, None, results, on_trial=fill_after_the_first_trial)
        (results / "filler").unlink()
        trials = {r["trial_id"] for r in run_query(results, "SELECT DISTINCT trial_id FROM trials").to_pylist()}
        samples = {r["trial_id"] for r in run_query(results, "SELECT DISTINCT trial_id FROM samples").to_pylist()}
        assert len(trials) == 1 and samples == trials  # never samples without their trial
        (run,) = run_query(results, "SELECT status, finished_at FROM runs").to_pylist()
        # The space held back at the start let the last row be written on the full disk.
        assert run["status"] == "failed" and run["finished_at"] is not None
        assert not list(results.rglob(".reserve"))


def test_a_disk_turned_read_only_mid_run_keeps_what_finished_and_says_so(ray_local, tmp_path):
    from orchestrator.pipeline.jobs import run_sweep
    from orchestrator.pipeline.sweep_file import parse_sweep
    from orchestrator.store.writer import StoreError

    spec = parse_sweep({"repetitions": 2, "min_time": 0.02, "warmup": 0, "placement": "none",
                        "workloads": {"cpu.sqrt_mod": {"elements": [1024, 2048, 4096]}}})
    with tmpfs(tmp_path / "small", "size=4m") as results:
        def read_only_after_the_first_trial(i, trial, record):
            if record is not None and i == 0:
                subprocess.run(["mount", "-o", "remount,ro", str(results)], check=True)

        with pytest.raises(StoreError) as caught:
            run_sweep(spec, None, results, on_trial=read_only_after_the_first_trial)
        message = str(caught.value)
        assert message.startswith("The results could not be written while storing trial cpu.sqrt_mod-")
        assert "Read-only file system" in message and "Traceback" not in message
        assert message.endswith("what finished before is kept, but the run could not be marked failed either, so "
                                "it reads as interrupted: make the folder writable or pass another --results DIR, then run again.")
        trials = {r["trial_id"] for r in run_query(results, "SELECT DISTINCT trial_id FROM trials").to_pylist()}
        samples = {r["trial_id"] for r in run_query(results, "SELECT DISTINCT trial_id FROM samples").to_pylist()}
        assert len(trials) == 1 and samples == trials
        (run,) = run_query(results, "SELECT status FROM runs").to_pylist()
        assert run["status"] == "interrupted"  # the row says running, its driver closed it: not running


def test_a_hung_trial_is_failed_by_the_watchdog_and_the_run_goes_on(ray_local, tmp_path):
    result = CliRunner().invoke(app, [
        "run", "command", "cpu.sqrt_mod", "--param", "command.cmd=sleep 1000", "--trial-timeout", "3",
        "--invocations", "1", "--repetitions", "2", "--min-time", "0.02", "--placement", "none", "--results", str(tmp_path)])
    assert result.exit_code == 1, result.output
    rows = {r["workload"]: r for r in run_query(tmp_path, "SELECT workload, status, error FROM trials").to_pylist()}
    assert rows["command"]["status"] == "failed"
    assert rows["command"]["error"] == "the trial ran past --trial-timeout 3 s and was stopped"
    assert rows["cpu.sqrt_mod"]["status"] == "ok"


def test_a_workload_error_keeps_its_command_exit_code_and_stderr(ray_local, tmp_path):
    result = CliRunner().invoke(app, [
        "run", "command", "--param", "command.cmd=echo boom >&2; exit 3", "--param", "command.shell=true",
        "--invocations", "1", "--repetitions", "1", "--min-time", "0.02", "--placement", "none", "--results", str(tmp_path)])
    assert result.exit_code == 1, result.output
    (row,) = run_query(tmp_path, "SELECT error FROM trials").to_pylist()
    assert "exited with 3" in row["error"] and "echo boom >&2; exit 3" in row["error"] and "boom" in row["error"]


# A parent started in the background (`cmd &` in a script) ignores SIGINT, a child inherits that and
# Python then installs no KeyboardInterrupt for it: the run under test gets Python's own, as from a terminal.
CLI_AS_FROM_A_TERMINAL = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                          "sys.argv[0] = 'topobench'; runpy.run_module('orchestrator.cli', run_name='__main__')")


@contextlib.contextmanager
def interruptible_run(tmp_path: Path, *args: str):
    """Start ``topobench run ARGS --results tmp_path`` as a user's terminal would; wait until its run row is
    stored (Ray is up, the trial planned); kill it after the block, so a failed test leaves nothing running."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-c", CLI_AS_FROM_A_TERMINAL, "run", *args, "--results", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("runs/*/*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()  # its own Ray goes with it: the raylet's parent is gone
            proc.communicate()


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_run_says_what_was_kept_and_leaves_a_true_status(tmp_path, sig, code):
    with interruptible_run(tmp_path, "cpu.sqrt_mod", "--invocations", "1", "--repetitions", "100000",
                           "--min-time", "0.05") as proc:
        time.sleep(2)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, out + err
    assert "interrupted; 0 of 1 trials are stored" in err and "Traceback" not in err
    (run,) = run_query(tmp_path, "SELECT status, finished_at FROM runs").to_pylist()
    assert run["status"] == "interrupted" and run["finished_at"] is not None


def test_an_interrupt_between_invocations_keeps_those_finished_flagged_partial(tmp_path):
    with interruptible_run(tmp_path, "cpu.sqrt_mod", "--invocations", "200", "--repetitions", "2",
                           "--min-time", "0.02", "--warmup", "0", "--no-lock") as proc:
        time.sleep(8)  # a few invocations of fresh workers finish meanwhile
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    said = " ".join(err.split())  # the console wraps long lines
    assert "interrupted; 1 of 1 trials are stored" in said and "(1 of them partial" in said, err
    (row,) = run_query(tmp_path, "SELECT invocations, invocations_planned, n, flags, status FROM trials "
                                 "WHERE metric = 'element_ops_per_s'").to_pylist()
    assert row["status"] == "ok" and "partial" in row["flags"] and row["invocations_planned"] == 200
    assert 1 <= row["invocations"] < 200 and row["n"] == 2 * row["invocations"]
    stored = run_query(tmp_path, "SELECT count(DISTINCT invocation) AS k FROM samples").to_pylist()
    assert stored == [{"k": row["invocations"]}]  # only finished invocations: the one cut short is dropped


def test_report_into_a_read_only_folder_is_one_sentence(ray_local, tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["run", "cpu.sqrt_mod", "--invocations", "1", "--repetitions", "2", "--min-time", "0.02",
                               "--results", str(tmp_path / "r")]).exit_code == 0
    with tmpfs(tmp_path / "ro", "ro,size=1m") as out:
        result = runner.invoke(app, ["report", "latest", "--results", str(tmp_path / "r"), "--out", str(out)])
    assert result.exit_code == 2
    assert "cannot be written (Read-only file system); pass a writable folder with --out DIR." in result.stderr
