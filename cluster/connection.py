"""Connect to Ray: an explicit or ``RAY_ADDRESS`` cluster, else an embedded local one.

Token authentication stays on (``cluster/__init__.py`` sets it before ray is imported).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ray

from cluster.address import check_gcs, resolve_address
from workloads.errors import UserError

DEFAULT_OBJECT_STORE_BYTES = 256 * 2**20


@dataclass(frozen=True, slots=True)
class RaySession:
    """A connection made by ``ray_session``: the cluster address, or None for an embedded Ray."""

    address: str | None
    embedded: bool
    """True when this process started the Ray instance (one node, this host, this process's CPUs)."""


@contextmanager
def ray_session(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    object_store_bytes: int = DEFAULT_OBJECT_STORE_BYTES,
) -> Iterator[RaySession]:
    """Join the cluster at ``address`` (see ``resolve_address``) or start an embedded Ray.

    The embedded Ray gets ``num_cpus`` (default: the CPUs this process may use, since Ray
    counts all of the machine's), a bounded object store, no dashboard and a temporary
    folder of its own, removed on exit with the Ray instance. A cluster that was joined is
    only disconnected from, never stopped.
    """
    resolved = resolve_address(address)
    if ray.is_initialized():  # a caller (a test, a notebook) already connected: use it as is
        yield RaySession(resolved, embedded=False)
        return
    temp_dir = None
    if resolved is None:
        # Short: Ray's Unix socket paths under it must stay under 107 bytes.
        temp_dir = Path(tempfile.mkdtemp(prefix="tb-ray-", dir="/tmp"))
        ray.init(
            "local",
            num_cpus=num_cpus or len(os.sched_getaffinity(0)),
            object_store_memory=object_store_bytes,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            _temp_dir=str(temp_dir),
        )
    else:
        check_gcs(resolved)
        try:
            ray.init(address=resolved, log_to_driver=False, configure_logging=False)
        except ConnectionError as exc:  # e.g. InvalidAuthToken: a cluster with another token
            raise UserError(f"--address {resolved}: Ray refused the connection ({str(exc).splitlines()[0]}); "
                            "use the cluster's token (~/.ray/auth_token, or RAY_AUTH_TOKEN) on this host.") from None
    try:
        yield RaySession(resolved, embedded=temp_dir is not None)
    finally:
        ray.shutdown()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
