"""Start and stop ``ray start`` nodes on this machine (tests, ``topobench cluster local``).

Every node of one local cluster shares one short temp dir (``--temp-dir`` on the head;
joining nodes use the head's), so the processes that belong to it can be found by that
path in their command lines. Stopping never uses ``ray stop``, which kills every Ray
cluster on the host: it signals only recorded/own processes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil

_ADDRESS = re.compile(r"--address='([^']+)'")


@dataclass(frozen=True, slots=True)
class LocalNode:
    """One started node: its GCS address and the process ids found for it."""

    address: str
    pids: tuple[int, ...]
    cpus: tuple[int, ...]


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


def processes_under(temp_dir: Path) -> tuple[int, ...]:
    """Return the pids of processes whose command line mentions ``temp_dir`` (never this one)."""
    needle = str(temp_dir)
    out = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.info["pid"] == os.getpid():
            continue
        cmdline = proc.info.get("cmdline") or []
        if any(needle in part for part in cmdline):
            out.append(proc.info["pid"])
    return tuple(sorted(out))


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
    proc = subprocess.run(cmd, env=ray_env(), capture_output=True, text=True, timeout=timeout_s, check=False)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{output[-3000:]}")
    address = head_address
    if address is None:
        match = _ADDRESS.search(output)
        if not match:
            raise RuntimeError(f"could not find the head's address in `ray start` output:\n{output[-3000:]}")
        address = match.group(1)
    pids = tuple(sorted(set(processes_under(temp_dir)) - before))
    return LocalNode(address, pids, tuple(cpus))


def stop_processes(pids: tuple[int, ...] | list[int], grace_s: float = 10.0) -> None:
    """Send SIGTERM to ``pids``, wait up to ``grace_s``, then SIGKILL what is left.

    Ray's gcs_server and raylet can take several seconds to act on SIGTERM.
    """
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
    psutil.wait_procs(alive, timeout=5)


def stop_cluster(temp_dir: Path, pids: tuple[int, ...] = (), grace_s: float = 10.0) -> None:
    """Stop the recorded ``pids`` and every process still running under ``temp_dir``."""
    stop_processes(tuple(set(pids) | set(processes_under(temp_dir))), grace_s)
    # Workers started after the snapshot, found again once their raylet is gone.
    stop_processes(processes_under(temp_dir), grace_s=2)
    if not processes_under(temp_dir):  # sessions, logs and sockets: nothing of it is needed now
        shutil.rmtree(temp_dir, ignore_errors=True)
