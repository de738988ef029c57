"""Tests of command: exit codes, stderr tails, prepare, extracted metric, validation."""

from __future__ import annotations

import shlex
import sys
import threading

import pytest

from workloads import UserError, WorkerContext
from workloads.command import Command
from workloads.harness import calibrate, time_run


def _make(**params) -> Command:
    w = Command(params)
    w.setup(WorkerContext())
    return w


def test_echo_42_is_extracted():
    before = set(threading.enumerate())
    w = _make(cmd="echo 42", metric_regex=r"(\d+)")
    n = calibrate(w.run, 0.02)
    timed = time_run(w.run, n)
    w.teardown()
    m = timed.measurement
    assert m.ops == n
    assert m.metrics["extracted"] == 42.0
    assert m.metrics["exit_code"] == 0.0
    assert 0 < m.metrics["wall_s"] <= timed.elapsed_ns / 1e9 / n
    assert set(threading.enumerate()) == before


def test_shell_mode_runs_through_sh():
    w = _make(cmd="echo value=$((6 * 7))", shell=True, metric_regex=r"value=(\d+)")
    assert w.run(2).metrics["extracted"] == 42.0


def test_cpu_time_of_the_child_is_counted():
    burn = shlex.join([sys.executable, "-c", "sum(range(3_000_000))"])
    m = _make(cmd=burn).run(1).metrics
    assert m["user_s"] + m["sys_s"] > 0
    assert "extracted" not in m


def test_nonzero_exit_fails_with_stderr_tail():
    script = "import sys\nfor i in range(30): print('line', i, file=sys.stderr)\nsys.exit(3)"
    w = _make(cmd=shlex.join([sys.executable, "-c", script]))
    with pytest.raises(RuntimeError, match="exited with 3") as err:
        w.run(1)
    text = str(err.value)
    assert "line 29" in text and "line 10" in text and "line 9\n" not in text


def test_ignore_failure_records_the_exit_code():
    w = _make(cmd="sh -c 'exit 3'", ignore_failure=True)
    m = w.run(2)
    assert m.ops == 2 and m.metrics["exit_code"] == 3.0


def test_prepare_runs_before_each_run(tmp_path):
    log = tmp_path / "log"
    w = _make(cmd=f"sh -c 'cat {log} | wc -l'", prepare=f"sh -c 'echo p >> {log}'",
              metric_regex=r"(\d+)")
    m = w.run(3)
    assert log.read_text() == "p\n" * 3
    assert m.metrics["extracted"] == 2.0  # runs saw 1, 2, 3 prepared lines: mean 2


def test_failed_prepare_fails_the_run():
    w = _make(cmd="true", prepare="false", ignore_failure=True)
    with pytest.raises(RuntimeError, match="prepare 'false' exited with 1"):
        w.run(1)


def test_regex_without_match_fails():
    w = _make(cmd="echo hello", metric_regex=r"(\d+)")
    with pytest.raises(RuntimeError, match="did not match"):
        w.run(1)


def test_timeout_kills_the_run():
    w = _make(cmd="sleep 5", timeout_s=0.1)
    with pytest.raises(RuntimeError, match="ran past timeout_s"):
        w.run(1)


def test_missing_command_is_refused():
    with pytest.raises(UserError) as err:
        Command({"cmd": "no-such-tool-xyz --fast"})
    assert str(err.value) == ("Parameter command.cmd: command 'no-such-tool-xyz' was not found on PATH; "
                              "give a full path or install it.")
    Command({"cmd": "no-such-tool-xyz", "shell": True})  # the shell decides at run time


@pytest.mark.parametrize("params, match", [
    ({}, "command.cmd is empty"),
    ({"cmd": "echo 'open"}, "cannot be split"),
    ({"cmd": "true", "prepare": "no-such-prep-xyz"}, "'no-such-prep-xyz' was not found"),
    ({"cmd": "true", "metric_regex": r"\d+"}, "has 0 groups"),
    ({"cmd": "true", "metric_regex": r"(\d+"}, "not a valid regex"),
    ({"cmd": "true", "timeout_s": -1.0}, "below its minimum"),
])
def test_bad_params_are_refused(params, match):
    with pytest.raises(UserError, match=match):
        Command(params)


def test_extracted_direction_follows_the_parameter():
    by_direction = {d: {m.name: m for m in Command.extra_metrics({"direction": d})}["extracted"].better
                    for d in ("higher", "lower", "none")}
    assert by_direction == {"higher": "higher", "lower": "lower", "none": None}
    assert Command({"cmd": "true"}).params["direction"] == "none"  # a scraped number means nothing by default


@pytest.mark.parametrize("path, what", [("/etc/passwd", "is not an executable file"),
                                        ("/no/such/tool", "does not exist")])
def test_a_full_path_that_cannot_run_is_named_as_such(path, what):
    with pytest.raises(UserError, match=f"Parameter command.cmd: '{path}' {what}; give the path of a program"):
        Command({"cmd": path})


def test_cwd_is_where_the_command_runs_and_a_relative_program_is_found_there(tmp_path):
    program = tmp_path / "prog"
    program.write_text("#!/bin/sh\ncat answer\n")  # a file of the folder it runs in
    program.chmod(0o755)
    (tmp_path / "answer").write_text("42\n")
    w = _make(cmd="./prog", cwd=str(tmp_path), metric_regex=r"(\d+)")
    assert w.run(2).metrics["extracted"] == 42.0
    with pytest.raises(UserError, match="command.cwd='/no/such' is not a folder"):
        Command({"cmd": "true", "cwd": "/no/such"})
    with pytest.raises(UserError, match="'./prog' does not exist"):
        Command({"cmd": "./prog"})  # relative to the current folder, without cwd
