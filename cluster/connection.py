"""Connect to Ray: an explicit or ``RAY_ADDRESS`` cluster, else an embedded local one.

Token authentication stays on: Ray reads ``RAY_AUTH_MODE`` when it is imported, and a
driver joining a token-protected cluster without it fails after a 20 s wait with
``InvalidAuthToken``; so this module sets it before ``import ray``.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import errno
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ray

from workloads.errors import UserError

# Ray's record of the last cluster started with `ray start` on this host.
CURRENT_CLUSTER_FILE = Path("/tmp/ray/ray_current_cluster")
DEFAULT_OBJECT_STORE_BYTES = 256 * 2**20


def _last_started_cluster() -> str:
    """Return the address of the last `ray start` on this host, found the way Ray finds it."""
    try:  # private API, but it is exactly Ray's own "auto" lookup (honours RAY_TMPDIR)
        from ray._private.services import find_bootstrap_address

        return (find_bootstrap_address(None) or "").strip()
    except Exception:  # noqa: BLE001 — an older/newer Ray without it: read the default file
        try:
            return CURRENT_CLUSTER_FILE.read_text().strip()
        except OSError:
            return ""


def resolve_address(address: str | None) -> str | None:
    """Return the cluster address to join: ``address``, ``RAY_ADDRESS``, or None (embedded).

    ``"auto"`` is resolved the way Ray does, from ``/tmp/ray/ray_current_cluster``.

    Raises:
        UserError: "auto" with no cluster started on this host, or an address whose
            GCS port does not accept a TCP connection within 3 s.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None or address == "local":
        return None
    if address.startswith("ray://"):
        raise UserError(f"--address {address}: Ray Client addresses are not supported; "
                        "give the GCS address host:port (e.g. 10.0.0.5:6379) or 'auto'.")
    if address == "auto":
        address = _last_started_cluster()
        if not address:
            raise UserError("--address auto found no Ray cluster started on this host; "
                            "start one with `ray start --head` or omit --address.")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r} is not host:port; give e.g. 127.0.0.1:6379 or 'auto'.")
    try:
        # A TLS cluster (RAY_USE_TLS) would not answer a plain HTTP/2 preface: skip the probe.
        speaks_grpc = os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true") or _speaks_http2(host, int(port))
    except TimeoutError:
        raise UserError(f"--address {address}: the port accepts connections but did not answer within 3 s; "
                        "check that it is a Ray GCS (the address `ray start --head` printed).") from None
    except OSError as exc:
        raise UserError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                        "check the address or start one with `ray start --head`.") from None
    if not speaks_grpc:  # ray.init would retry such a port for minutes
        raise UserError(f"--address {address}: something answers there but it is not a Ray GCS (no gRPC); "
                        "give the address `ray start --head` printed (default port 6379).")
    return address


# The HTTP/2 connection preface and an empty SETTINGS frame (RFC 9113, section 3.4).
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _speaks_http2(host: str, port: int, timeout_s: float = 3.0) -> bool:
    """Return whether ``host:port`` answers the HTTP/2 preface with a SETTINGS frame (as gRPC does).

    Raises:
        TimeoutError: it accepted the connection but sent nothing within ``timeout_s``.
        OSError: nothing accepts a TCP connection there.
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except TimeoutError as exc:  # nothing answered the connect: unreachable, not "silent"
        raise ConnectionError(errno.ETIMEDOUT, "connection timed out") from exc
    with sock:
        try:
            sock.sendall(_H2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
        except TimeoutError:
            raise
        except OSError:  # reset or refused mid-handshake: not a gRPC server
            return False
    return len(head) == 9 and head[3] == 0x04  # frame type 4 = SETTINGS


@contextmanager
def ray_session(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    object_store_bytes: int = DEFAULT_OBJECT_STORE_BYTES,
) -> Iterator[str | None]:
    """Join the cluster at ``address`` (see ``resolve_address``) or start an embedded Ray.

    The embedded Ray gets ``num_cpus`` (default: the CPUs this process may use, since Ray
    counts all of the machine's), a bounded object store and no dashboard, and is shut down
    on exit. A cluster that was joined is only disconnected from, never stopped.
    Yields the joined address, or None for the embedded instance.
    """
    resolved = resolve_address(address)
    if ray.is_initialized():  # a caller (a test, a notebook) already connected: use it as is
        yield resolved
        return
    if resolved is None:
        ray.init(
            "local",
            num_cpus=num_cpus or len(os.sched_getaffinity(0)),
            object_store_memory=object_store_bytes,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    else:
        try:
            ray.init(address=resolved, log_to_driver=False, configure_logging=False)
        except ConnectionError as exc:  # e.g. InvalidAuthToken: a cluster with another token
            raise UserError(f"--address {resolved}: Ray refused the connection ({str(exc).splitlines()[0]}); "
                            "use the cluster's token (~/.ray/auth_token, or RAY_AUTH_TOKEN) on this host.") from None
    try:
        yield resolved
    finally:
        ray.shutdown()
