"""External-command workloads: run a program repeatedly and time it, as hyperfine does."""

from __future__ import annotations

import os
import re
import resource
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from workloads.base import Measurement, Metric, WorkerContext, Workload
from workloads.errors import UserError
from workloads.params import Param
from workloads.registry import register

STDERR_TAIL_LINES = 20


def command_argv(cmd: str, shell: bool) -> list[str]:
    """Return the argv for ``cmd``: ``/bin/sh -c cmd`` with ``shell``, else ``shlex.split``."""
    return ["/bin/sh", "-c", cmd] if shell else shlex.split(cmd)


def _check_command(param: str, cmd: str, shell: bool, cwd: str = "") -> None:
    where = f"command.{param}"
    try:
        argv = command_argv(cmd, shell)
    except ValueError as exc:
        raise UserError(f"Parameter {where}={cmd!r} cannot be split into words ({exc}); "
                        "fix its quoting.") from None
    if not argv:
        raise UserError(f"Parameter {where} is empty; give a command such as "
                        f"--param {where}='sleep 0.1'.")
    program = os.path.join(cwd, argv[0]) if cwd else argv[0]  # a relative path runs from cwd
    if not shell and "/" in argv[0] and not (os.path.isfile(program) and os.access(program, os.X_OK)):
        what = "does not exist" if not os.path.exists(program) else "is not an executable file"
        raise UserError(f"Parameter {where}: {argv[0]!r} {what}; give the path of a program you can run.")
    if not shell and shutil.which(program if "/" in argv[0] else argv[0]) is None:
        raise UserError(f"Parameter {where}: command {argv[0]!r} was not found on PATH; give a full path "
                        "or install it.")


def tail(text: bytes, lines: int = STDERR_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of ``text`` decoded leniently ("" when empty)."""
    return "\n".join(text.decode(errors="replace").rstrip().splitlines()[-lines:])


@register
class Command(Workload):
    """Run an external command ``n`` times and time each run, like hyperfine.

    One op is one run of ``cmd``. ``runs_per_s`` is runs per second of the whole sample as
    the harness times it, which includes the untimed ``prepare`` command when one is given;
    ``wall_s``, ``user_s`` and ``sys_s`` are per-run means over the command alone (user and
    sys from ``getrusage(RUSAGE_CHILDREN)`` deltas around each run, so they include the
    command's own children that it waited for). A non-zero exit fails the sample with the
    stderr tail unless ``ignore_failure``. Output is discarded unless ``metric_regex`` is set.
    Source: hyperfine (David Peter), wall/user/sys per run with an optional --prepare.
    """

    name = "command"
    summary = "run an external command repeatedly; wall, user and sys seconds per run"
    source = "hyperfine (sharkdp/hyperfine): --prepare, per-run wall/user/sys, exit codes"
    op = "one run of the command, from spawn to exit"
    throughput = Metric("runs_per_s", "runs/s", "command runs per second (prepare included)")
    metrics = (
        Metric("wall_s", "s", "mean wall-clock time of one run", better="lower"),
        Metric("user_s", "s", "mean user CPU time of one run (children)",
               better="lower"),
        Metric("sys_s", "s", "mean system CPU time of one run (children)",
               better="lower"),
        Metric("exit_code", "", "exit code of the last failing run in the sample, else 0 "
               "(-N: killed by signal N)", better=None),
        Metric("extracted", "", "mean over runs of the float metric_regex's group captured "
               "from stdout (only when metric_regex is set; direction says which way is better)", better=None),
    )
    params = (
        Param("cmd", "", "the command to time (split with shlex unless shell=true)", ""),
        Param("shell", False, "run cmd and prepare through /bin/sh -c", ""),
        Param("prepare", "", "command run before each timed run, not timed; empty = none", ""),
        Param("metric_regex", "", "regex with one group; the float it captures from stdout "
              "becomes the metric 'extracted'; empty = none", ""),
        Param("direction", "none", "which way the extracted value is better: higher, lower, or none "
              "(descriptive: compared without a verdict)", "", choices=("higher", "lower", "none")),
        Param("ignore_failure", False, "record non-zero exits instead of failing", ""),
        Param("timeout_s", 0.0, "kill a run slower than this and fail; 0 = no limit", "s",
              minimum=0.0),
        Param("cwd", "", "folder the command runs in; when it is a git checkout its commit labels the "
              "run; empty = the worker's own folder", ""),
    )

    @classmethod
    def validate(cls, params: Mapping[str, Any]) -> None:
        """Refuse an empty or missing command, a bad prepare, a cwd that is no folder, or a bad metric_regex."""
        cwd = params.get("cwd", "")
        if cwd and not os.path.isdir(cwd):
            raise UserError(f"Parameter command.cwd={cwd!r} is not a folder; give the folder the command "
                            "runs in (its program's checkout), or leave it empty.")
        _check_command("cmd", params["cmd"], params["shell"], cwd)
        if params["prepare"]:
            _check_command("prepare", params["prepare"], params["shell"], cwd)
        if params["metric_regex"]:
            try:
                groups = re.compile(params["metric_regex"]).groups
            except re.error as exc:
                raise UserError(f"Parameter command.metric_regex={params['metric_regex']!r} "
                                f"is not a valid regex ({exc}); fix it.") from None
            if groups != 1:
                raise UserError(f"Parameter command.metric_regex={params['metric_regex']!r} "
                                f"has {groups} groups; give exactly one, around the number.")

    @classmethod
    def extra_metrics(cls, params: Mapping[str, Any]) -> tuple[Metric, ...]:
        """Return the metrics, ``extracted`` with the direction the user gave it."""
        better = {"higher": "higher", "lower": "lower", "none": None}[params["direction"]]
        return tuple(Metric(m.name, m.unit, m.description, better) if m.name == "extracted" else m
                     for m in cls.metrics)

    def setup(self, ctx: WorkerContext) -> None:
        p = self.params
        self._argv = command_argv(p["cmd"], p["shell"])
        self._prepare = command_argv(p["prepare"], p["shell"]) if p["prepare"] else None
        self._regex = re.compile(p["metric_regex"]) if p["metric_regex"] else None
        self._timeout = p["timeout_s"] or None
        self._cwd = p.get("cwd") or None

    def run(self, n: int) -> Measurement:
        wall = user = sys = extracted = 0.0
        exit_code = 0
        for _ in range(n):
            if self._prepare:
                self._call(self._prepare, "prepare", capture=False)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter_ns()
            code, out = self._call(self._argv, "cmd", capture=self._regex is not None)
            wall += (time.perf_counter_ns() - t0) / 1e9
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            user += after.ru_utime - before.ru_utime
            sys += after.ru_stime - before.ru_stime
            exit_code = code or exit_code
            if self._regex is not None:
                extracted += self._extract(out)
        metrics = {"wall_s": wall / n, "user_s": user / n, "sys_s": sys / n,
                   "exit_code": float(exit_code)}
        if self._regex is not None:
            metrics["extracted"] = extracted / n
        return Measurement(ops=n, metrics=metrics)

    def _call(self, argv: list[str], which: str, capture: bool) -> tuple[int, bytes]:
        """Run ``argv``; return (exit code, stdout); raise on failure unless ignored."""
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, timeout=self._timeout, check=False, cwd=self._cwd)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"command: {which} {shlex.join(argv)!r} ran past timeout_s="
                               f"{self._timeout} s and was killed") from None
        if proc.returncode != 0 and (which == "prepare" or not self.params["ignore_failure"]):
            raise RuntimeError(f"command: {which} {shlex.join(argv)!r} exited with "
                               f"{proc.returncode}; last lines of its stderr:\n"
                               f"{tail(proc.stderr)}")
        return proc.returncode, proc.stdout or b""

    def _extract(self, out: bytes) -> float:
        """Return the float captured by ``metric_regex`` in ``out``; raise when absent."""
        match = self._regex.search(out.decode(errors="replace"))
        if match is None:
            raise RuntimeError(f"command: metric_regex {self._regex.pattern!r} did not match "
                               "the command's stdout")
        try:
            return float(match.group(1))
        except (TypeError, ValueError):
            raise RuntimeError(f"command: metric_regex captured {match.group(1)!r}, which is "
                               "not a number") from None
