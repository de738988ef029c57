"""Start and stop ``ray start`` nodes on this machine (tests, ``topobench cluster local``).

Every node of one local cluster shares one short temp dir (``--temp-dir`` on the head;
joining nodes use the head's), and each node's ``ray start`` runs in a new session, so
every process of the node (gcs_server, raylet, workers, and the DashboardAgent and
RuntimeEnvAgent, which rename their command lines and outlive a killed raylet by 45-90 s
reparented to PID 1) carries that session id. A process belongs to the cluster when its
session is one of the nodes', when its command line names the temp dir, or when it is a
renamed ``ray::`` process with a file open under it. Stopping never uses ``ray stop``,
which kills every Ray cluster on the host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from workloads.errors import UserError

_ADDRESS = re.compile(r"--address='([^']+)'")
_CREATE_TIME_SLACK_S = 1.0  # psutil's create_time is rounded to clock ticks

OBJECT_STORE_MINIMUM_BYTES = 75 * 2**20
"""Ray's smallest object store per node (ray_constants.OBJECT_STORE_MINIMUM_MEMORY_BYTES): less fails ray start."""


@dataclass(frozen=True, slots=True)
class LocalNode:
    """One started node: its GCS address, the process ids found for it, its session id."""

    address: str
    pids: tuple[int, ...]
    cpus: tuple[int, ...]
    session: int = 0  # the sid every process of the node inherits (the `ray start` pid)


def ray_env() -> dict[str, str]:
    """Return the environment for ``ray`` commands: token authentication on, no usage stats."""
    env = dict(os.environ)
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.pop("RAY_ADDRESS", None)
    return env


def ensure_token() -> None:
    """Create ``~/.ray/auth_token`` when missing (``ray get-auth-token --generate``; idempotent)."""
    subprocess.run(["ray", "get-auth-token", "--generate"], env=ray_env(), check=True,
                   capture_output=True, timeout=60)


def make_temp_dir() -> Path:
    """Return a new short temp dir (Unix socket paths under it must stay under 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix="tb-ray-", dir="/tmp"))


def _names_dir(proc: psutil.Process, needle: str) -> bool:
    """Return whether ``proc``'s command line names ``needle`` or it is a ray::… with files there.

    Renamed ``ray::`` processes are the agents and workers; a driver attached to the cluster
    also keeps logs open under ``needle`` but is no part of it.
    """
    cmdline = proc.info.get("cmdline") or ()
    if any(needle in part for part in cmdline):
        return True
    if not cmdline or not cmdline[0].startswith("ray::"):
        return False
    try:  # the agents renamed their command lines, but keep their logs open
        return any(f.path.startswith(needle + os.sep) for f in proc.open_files())
    except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def _in_sessions(proc: psutil.Process, sessions: frozenset[int], since: float) -> bool:
    """Return whether ``proc`` is in one of ``sessions`` and was started at or after ``since``."""
    if not sessions:
        return False
    try:
        return (os.getsid(proc.info["pid"]) in sessions
                and proc.info["create_time"] >= since - _CREATE_TIME_SLACK_S)
    except OSError:
        return False


def processes_under(temp_dir: Path, sessions: tuple[int, ...] | list[int] = (),
                    since: float = 0.0) -> tuple[int, ...]:
    """Return the live processes of the cluster in ``temp_dir`` (never this one); () if none.

    A process belongs when its command line names ``temp_dir``, when it is a renamed
    ``ray::`` process with a file open under it, or, when ``sessions`` are given, its session
    id is one of them and it started at or after ``since`` (Unix seconds). A session whose
    leader is alive again is a reused pid, skipped.
    """
    return _find(str(temp_dir), sessions, since)


def _find(needle: str | None, sessions: tuple[int, ...] | list[int],
          since: float) -> tuple[int, ...]:
    """Return live pids in ``sessions`` (started since ``since``) or naming ``needle``."""
    live_sessions = frozenset(s for s in sessions if s > 0 and not _leader_alive(s))
    out = []
    for proc in psutil.process_iter(["pid", "cmdline", "create_time", "status"]):
        if proc.info["pid"] == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if _in_sessions(proc, live_sessions, since) or (needle and _names_dir(proc, needle)):
            out.append(proc.info["pid"])
    return tuple(sorted(out))


def _leader_alive(session: int) -> bool:
    """Return whether a live process has pid ``session`` (our `ray start` leaders have exited)."""
    try:
        return psutil.Process(session).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def start_node(
    temp_dir: Path,
    *,
    num_cpus: int,
    head_address: str | None = None,
    cpus: tuple[int, ...] = (),
    object_store_bytes: int = 128 * 2**20,
    timeout_s: float = 120,
) -> LocalNode:
    """Start one node with ``ray start`` (a head when ``head_address`` is None) and return it.

    The node is started with ``--node-ip-address 127.0.0.1``, no dashboard and token
    authentication on, and, when ``cpus`` is given, under ``taskset -c`` so its workers
    inherit those CPUs. Ray still advertises the host's primary IP and its GCS and raylet
    listen on all interfaces; the token is what keeps other hosts out.

    Raises:
        RuntimeError: ``ray start`` failed; its output is in the message.
    """
    before = set(processes_under(temp_dir))
    started = time.time()
    cmd = ["ray", "start", "--num-cpus", str(num_cpus), "--node-ip-address", "127.0.0.1",
           "--object-store-memory", str(object_store_bytes), "--disable-usage-stats"]
    if head_address is None:
        cmd += ["--head", "--port", "0", "--include-dashboard=false", "--temp-dir", str(temp_dir)]
    else:
        cmd += ["--address", head_address]
    if cpus:
        if shutil.which("taskset") is None:
            raise RuntimeError("taskset is not installed (util-linux); cannot pin the node's CPUs")
        cmd = ["taskset", "-c", ",".join(map(str, cpus)), *cmd]
    # A new session: every process of the node carries its sid, whatever it renames itself to.
    proc = subprocess.Popen(cmd, env=ray_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except BaseException:  # a timeout or Ctrl-C: leave nothing of this node behind
        proc.kill()  # the leader first: a live leader's session is taken for a reused pid
        proc.wait()
        stop_processes(_find(None, (proc.pid,), started))  # this node only, not the cluster
        raise
    output = stdout + stderr
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{output[-3000:]}")
    address = head_address
    if address is None:
        match = _ADDRESS.search(output)
        if not match:
            raise RuntimeError("could not find the head's address in `ray start` output:\n"
                               f"{output[-3000:]}")
        address = match.group(1)
    pids = tuple(sorted(set(processes_under(temp_dir, (proc.pid,), started)) - before))
    return LocalNode(address, pids, tuple(cpus), proc.pid)


def stop_processes(pids: tuple[int, ...] | list[int], grace_s: float = 10.0) -> int:
    """Send SIGTERM to ``pids``, wait up to ``grace_s``, SIGKILL what is left, wait until gone.

    Ray's gcs_server and raylet can take a minute to act on SIGTERM on a loaded host.
    Returns how many of ``pids`` were alive and signalled.
    """
    return len(_stop(pids, grace_s))


def _stop(pids: Iterable[int], grace_s: float) -> set[int]:
    """Stop ``pids`` as ``stop_processes`` does; return the pids that were alive and signalled."""
    procs = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            p.send_signal(signal.SIGTERM)
            procs.append(p)
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(alive, timeout=10)
    stuck = [p.pid for p in alive if _running(p)]
    if stuck:
        raise RuntimeError(f"processes {stuck} survived SIGKILL for 10 s")
    return {p.pid for p in procs}


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _started_since(pids: Iterable[int], since: float) -> set[int]:
    """Return the live ``pids`` started at or after ``since`` (a recorded pid may be reused)."""
    out = set()
    for pid in pids:
        try:
            if psutil.Process(pid).create_time() >= since - _CREATE_TIME_SLACK_S:
                out.add(pid)
        except psutil.NoSuchProcess:
            continue
    return out


def stop_cluster(temp_dir: Path, pids: tuple[int, ...] = (), grace_s: float = 10.0, *,
                 sessions: tuple[int, ...] | list[int] = (), since: float = 0.0) -> int:
    """Stop every process of the cluster in ``temp_dir``, wait until all are gone, remove the dir.

    ``pids`` are recorded pids, ``sessions``/``since`` as for ``processes_under``. Repeats
    until no process is found (a raylet may start workers while it stops). Returns how many
    distinct processes were stopped; 0 when none ran.
    """
    stopped: set[int] = set()
    todo = _started_since(pids, since) | set(processes_under(temp_dir, sessions, since))
    for _ in range(5):
        if not todo:
            break
        stopped |= _stop(sorted(todo), grace_s)
        todo = set(processes_under(temp_dir, sessions, since))
        grace_s = min(grace_s, 2.0)
    if todo:
        raise RuntimeError(f"processes {sorted(todo)} of the cluster in {temp_dir} keep coming "
                           "back")
    shutil.rmtree(temp_dir, ignore_errors=True)  # sessions, logs, sockets: nothing is needed now
    return len(stopped)


def state_path() -> Path:
    """Return the state file: ``$TOPOBENCH_STATE_DIR/local_cluster.json``, else ~/.local/state."""
    base = os.environ.get("TOPOBENCH_STATE_DIR")
    root = Path(base) if base else Path.home() / ".local" / "state" / "topobench"
    return root / "local_cluster.json"


def read_state() -> dict[str, Any] | None:
    """Return the recorded local cluster, or None when nothing (readable) is recorded."""
    try:
        return json.loads(state_path().read_text())
    except (OSError, ValueError):
        return None


def _alive(state: dict[str, Any]) -> bool:
    """Return whether any process of the recorded cluster ``state`` still runs."""
    since = state.get("started_s", 0.0)
    return bool(_started_since(state.get("pids", ()), since)
                or processes_under(Path(state["temp_dir"]), state.get("sessions", ()), since))


def node_cpus(nodes: int, cpus_per_node: int, usable: list[int]) -> list[tuple[int, ...]] | None:
    """Return each node's CPUs (slices of ``usable``); None when there are too few."""
    if nodes * cpus_per_node > len(usable):
        return None
    return [tuple(usable[i * cpus_per_node:(i + 1) * cpus_per_node]) for i in range(nodes)]


def start_local(nodes: int, cpus_per_node: int, object_store_mib: int,
                say: Callable[[str], None] = print) -> dict[str, Any]:
    """Start a local cluster of ``nodes`` nodes, record it in the state file and return the record.

    Each node after the head starts when the previous one is up; when there are enough
    usable CPUs every node is pinned to its own (``taskset``). ``say`` reports progress.

    Raises:
        UserError: bad counts, or a recorded cluster whose processes still run.
    """
    if nodes < 1 or cpus_per_node < 1:
        raise UserError(f"--nodes {nodes} and --cpus-per-node {cpus_per_node} must both be at "
                        "least 1.")
    least = -(-OBJECT_STORE_MINIMUM_BYTES // 2**20)
    if object_store_mib < least:  # ray start would fail after the first node started
        raise UserError(f"--object-store-mib {object_store_mib} is below Ray's minimum object store "
                        f"({least} MiB); give at least {least}.")
    state = read_state()
    if state is not None and _alive(state):
        raise UserError(f"A local cluster is already running at {state['address']} (recorded in "
                        f"{state_path()}); stop it first with `topobench cluster stop`.")
    usable = sorted(os.sched_getaffinity(0))
    plan = node_cpus(nodes, cpus_per_node, usable)
    if plan is None:
        say(f"Note: {nodes} x {cpus_per_node} CPUs is more than the {len(usable)} usable CPUs; "
            "nodes are not pinned and share the CPUs.")
    ensure_token()
    temp_dir = make_temp_dir()
    started = time.time()
    pids: list[int] = []
    sessions: list[int] = []
    address = None
    try:
        for i in range(nodes):
            node = start_node(temp_dir, num_cpus=cpus_per_node, head_address=address,
                              cpus=plan[i] if plan else (),
                              object_store_bytes=object_store_mib * 2**20)
            address = node.address
            pids.extend(node.pids)
            sessions.append(node.session)
            say(f"node {i + 1}/{nodes} started{' (head)' if i == 0 else ''}"
                f"{': CPUs ' + ','.join(map(str, plan[i])) if plan else ''}")
    except BaseException:
        stop_cluster(temp_dir, tuple(pids), sessions=sessions, since=started)
        raise
    record = {"address": address, "temp_dir": str(temp_dir), "pids": sorted(pids),
              "sessions": sessions, "started_s": started, "nodes": nodes,
              "cpus_per_node": cpus_per_node, "pinned": plan is not None,
              "started_at": datetime.now(timezone.utc).isoformat()}
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return record


def stop_local(grace_s: float = 10.0) -> tuple[dict[str, Any], int] | None:
    """Stop the recorded local cluster; return (its record, processes stopped), None if none.

    Returns once every process of its nodes is gone (agents included) and its temp dir removed.
    """
    state = read_state()
    if state is None:
        return None
    count = stop_cluster(Path(state["temp_dir"]), tuple(state.get("pids", ())), grace_s,
                         sessions=state.get("sessions", ()), since=state.get("started_s", 0.0))
    state_path().unlink(missing_ok=True)
    return state, count
