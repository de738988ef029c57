"""Resolve where the Ray cluster is: an explicit or ``RAY_ADDRESS`` address, "auto", or none.

Ray-free (imports no ray), so a command refuses a bad address at once; a port that does
not speak gRPC is refused within 3 s instead of after Ray's minutes of retries.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from workloads.errors import UserError

# Ray's record of the last cluster started with `ray start` on this host.
CURRENT_CLUSTER_FILE = Path("/tmp/ray/ray_current_cluster")


def _last_started_cluster() -> str:
    """Return the address of the last `ray start` on this host, found the way Ray finds it."""
    try:  # private API, but it is exactly Ray's own "auto" lookup (honours RAY_TMPDIR)
        from ray._private.services import find_bootstrap_address  # imported only for "auto"

        return (find_bootstrap_address(None) or "").strip()
    except Exception:  # noqa: BLE001 — an older/newer Ray without it: read the default file
        try:
            return CURRENT_CLUSTER_FILE.read_text().strip()
        except OSError:
            return ""


def resolve_address(address: str | None) -> str | None:
    """Return the cluster address to join: ``address``, ``RAY_ADDRESS``, or None (embedded).

    ``"auto"`` is resolved the way Ray does, from ``/tmp/ray/ray_current_cluster``. Messages
    name where the address came from (``--address`` or ``RAY_ADDRESS``).

    Raises:
        UserError: "auto" with no cluster started on this host, or an address whose
            GCS port does not accept a TCP connection within 3 s.
    """
    source = "--address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None or address == "local":
        return None
    if address.startswith("ray://"):
        raise UserError(f"{source} {address}: Ray Client addresses are not supported; "
                        "give the GCS address host:port (e.g. 10.0.0.5:6379) or 'auto'.")
    if address == "auto":
        address = _last_started_cluster()
        if not address:
            raise UserError(f"{source} auto found no Ray cluster started on this host; "
                            "start one with `ray start --head` or omit it.")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"{source} {address!r} is not host:port; give e.g. 127.0.0.1:6379 or 'auto'.")
    try:
        # A TLS cluster (RAY_USE_TLS) would not answer a plain HTTP/2 preface: skip the probe.
        speaks_grpc = os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true") or _speaks_http2(host, int(port))
    except TimeoutError:
        raise UserError(f"{source} {address}: the port accepts connections but did not answer within 3 s; "
                        "check that it is a Ray GCS (the address `ray start --head` printed).") from None
    except OSError as exc:
        raise UserError(f"{source} {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                        "check the address or start one with `ray start --head`.") from None
    if not speaks_grpc:  # ray.init would retry such a port for minutes
        raise UserError(f"{source} {address}: something answers there but it is not a Ray GCS (no gRPC); "
                        "give the address `ray start --head` printed (default port 6379).")
    return address


def check_gcs(address: str, timeout_s: float = 3.0) -> None:
    """Ask ``address`` for one GCS key; refuse at once a gRPC port that is not a GCS (a raylet's).

    ``ray.init`` would retry such a port for 20 s and then blame the token.

    Raises:
        UserError: it answers, but not as a GCS (or it refuses this host's token).
    """
    try:
        from ray._raylet import GcsClient  # Ray's own GCS client, as its autoscaler SDK uses it
    except ImportError:  # another Ray: let ray.init judge
        return
    try:
        GcsClient(address=address).internal_kv_get(b"topobench-probe", None, timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 -- an RpcError of any kind: judged by its words
        text = str(exc)
        if any(word in text.lower() for word in ("auth", "token")):
            raise UserError(f"{address}: the Ray cluster refused this host's token ({text.strip()[:200]}); "
                            "use the cluster's token (~/.ray/auth_token, or RAY_AUTH_TOKEN).") from None
        raise UserError(f"{address} answers gRPC but is not a Ray GCS (it may be a raylet's or a worker's "
                        "port); give the address `ray start --head` printed (default port 6379).") from None


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
