"""Local clusters: ``cluster stop`` leaves no process of its nodes and counts them.

One real 2-node ``ray start`` cluster for the whole module (each start costs ~10 s here).
Ray's DashboardAgent and RuntimeEnvAgent rename their command lines to ``ray::…`` and
outlive a killed raylet by 45-90 s reparented to PID 1; they are found by their node's
session id and by the logs they keep open under the cluster's temp dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from cluster.local_cluster import (
    node_cpus,
    processes_under,
    read_state,
    start_local,
    state_path,
    stop_local,
)

RAY_NAMES = ("ray::", "raylet", "gcs_server")
DRIVER = "import os, time; f = open(os.environ['LOG'], 'a'); print(flush=True); time.sleep(60)"


def test_node_cpus_slices_the_usable_cpus_or_refuses():
    assert node_cpus(2, 2, [0, 1, 4, 5, 6]) == [(0, 1), (4, 5)]
    assert node_cpus(3, 1, [0, 1]) is None


def _leaderless_session() -> tuple[subprocess.Popen, int, int]:
    """Start ``sleep`` in a new session whose leader (a shell) exits; return (shell, sid, pid)."""
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & echo $!"], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    child = int(shell.stdout.readline())
    shell.wait()
    return shell, shell.pid, child


def test_processes_under_finds_a_session_without_its_leader():
    since = time.time()
    shell, sid, child = _leaderless_session()
    try:
        nowhere = Path("/nonexistent/tb-ray-none")
        assert processes_under(nowhere, (sid,), since) == (child,)
        assert processes_under(nowhere, (sid,), since + 60) == ()  # started before the cluster
        assert processes_under(nowhere) == ()
    finally:
        psutil.Process(child).kill()
        shell.stdout.close()


def test_processes_under_skips_a_session_whose_leader_lives():
    # Our `ray start` leaders have exited; a live leader means the pid was reused.
    leader = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert processes_under(Path("/nonexistent/tb-ray-none"), (leader.pid,)) == ()
    finally:
        leader.kill()
        leader.wait()


def _scan(temp_dir: Path, sessions: set[int]) -> dict[int, str]:
    """Return {pid: command line} of every process in ``sessions`` or with files in ``temp_dir``.

    Independent of ``processes_under``: reads every process's open files, not only ``ray::``.
    """
    needle = str(temp_dir)
    found = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or ())
            mine = (os.getsid(proc.pid) in sessions or needle in cmdline
                    or any(f.path.startswith(needle + "/") for f in proc.open_files()))
        except (psutil.Error, OSError):
            continue
        if mine and proc.pid != os.getpid():
            found[proc.pid] = cmdline
    return found


def _ray_processes(temp_dir: Path, sessions: set[int]) -> dict[int, str]:
    return {p: c for p, c in _scan(temp_dir, sessions).items() if any(n in c for n in RAY_NAMES)}


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory):
    """A 2-node local cluster (1 CPU, 100 MiB object store each), in a private state dir."""
    saved = os.environ.get("TOPOBENCH_STATE_DIR")
    os.environ["TOPOBENCH_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))
    said: list[str] = []
    record = start_local(2, 1, 100, said.append)
    yield record, said
    if read_state() is not None:  # a failed test left it running
        stop_local(grace_s=2)
    if saved is None:
        os.environ.pop("TOPOBENCH_STATE_DIR")
    else:
        os.environ["TOPOBENCH_STATE_DIR"] = saved


@pytest.mark.ray
def test_stop_leaves_no_process_of_the_nodes_and_counts_them(local_cluster):
    record, said = local_cluster
    assert read_state() == record
    assert len(said) == 2 and said[0].startswith("node 1/2 started (head)")
    temp_dir, sessions = Path(record["temp_dir"]), set(record["sessions"])
    assert len(sessions) == 2
    # A driver attached to the cluster keeps logs open under its temp dir, but is no part of it.
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE,
                              env={**os.environ, "LOG": str(temp_dir / "driver.log")})
    try:
        driver.stdout.readline()
        before = _wait_stable(temp_dir, sessions)
        before.pop(driver.pid)
        names = list(before.values())
        assert sum("ray::DashboardAgent" in c for c in names) == 2  # one per node, renamed
        assert sum("ray::RuntimeEnvAgent" in c for c in names) == 2
        assert sum("/raylet --" in c for c in names) == 2
        assert sum("gcs_server" in c for c in names) == 1
        found = processes_under(temp_dir, record["sessions"], record["started_s"])
        assert set(found) == set(before)
        # By the command line and open files alone (an old record without sessions): the same.
        assert set(processes_under(temp_dir)) == set(before)

        state, count = stop_local(grace_s=2)

        assert state == record and count == len(before)
        assert driver.poll() is None  # the attached driver still runs
        assert processes_under(temp_dir, record["sessions"], record["started_s"]) == ()
        assert not [p for p in before if _running(p)]
        assert _ray_processes(temp_dir, sessions) == {}
        assert not temp_dir.exists()
        assert not state_path().exists() and read_state() is None
        assert stop_local() is None
    finally:
        driver.kill()
        driver.wait()
        driver.stdout.close()


def _wait_stable(temp_dir: Path, sessions: set[int], timeout_s: float = 30) -> dict[int, str]:
    """Return the cluster's processes once two scans 1 s apart agree (agents start late)."""
    deadline = time.monotonic() + timeout_s
    last = _scan(temp_dir, sessions)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = _scan(temp_dir, sessions)
        if now == last:
            return now
        last = now
    return last


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_an_object_store_below_rays_minimum_is_refused_before_any_node_starts(tmp_path):
    from ray._private.ray_constants import OBJECT_STORE_MINIMUM_MEMORY_BYTES
    from typer.testing import CliRunner

    from cluster.local_cluster import OBJECT_STORE_MINIMUM_BYTES
    from orchestrator.cli import app

    assert OBJECT_STORE_MINIMUM_BYTES == OBJECT_STORE_MINIMUM_MEMORY_BYTES  # Ray's own figure
    result = CliRunner().invoke(app, ["cluster", "local", "--nodes", "2", "--object-store-mib", "70"])
    assert result.exit_code == 2
    assert result.output.strip() == ("topobench: error: --object-store-mib 70 is below Ray's minimum object store "
                                     "(75 MiB); give at least 75.")
