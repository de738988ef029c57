"""Shared fixtures: one real embedded Ray for the in-process integration tests."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest

# Tests never attach to a cluster that happens to run on the host.
os.environ.pop("RAY_ADDRESS", None)
os.environ.setdefault("RAY_AUTH_MODE", "token")
sys.path.insert(0, str(Path(__file__).parent))  # tests import helpers such as sysfs_builder
# moto's test credentials, set before any Ray process starts: node agents writing to the moto
# server inherit them, and no process of the tests asks a cloud metadata service or real AWS.
os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})

RAY_TEST_CPUS = 2
RAY_TEST_OBJECT_STORE = 200 * 2**20


def start_local_ray() -> None:
    """Start the private local Ray every in-process test shares (2 CPUs, 200 MiB object store)."""
    import ray

    ray.init("local", num_cpus=RAY_TEST_CPUS, object_store_memory=RAY_TEST_OBJECT_STORE,
             include_dashboard=False, log_to_driver=False, configure_logging=False)


@pytest.fixture(scope="session")
def ray_local():
    """Start a private local Ray once for the session."""
    import ray

    start_local_ray()
    yield ray
    ray.shutdown()


@contextlib.contextmanager
def connected_cluster(head_node_args: dict, nodes: list[dict]):
    """Start a ``ray.cluster_utils.Cluster`` (``nodes``: each one's ``add_node`` arguments) and connect to it.

    The session's ``ray_local`` is shut down for it and started again afterwards, for the
    modules that run after this one.
    """
    import ray
    from ray.cluster_utils import Cluster

    had_ray = ray.is_initialized()
    if had_ray:
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args=head_node_args)
    try:
        for node in nodes:
            c.add_node(**node)
        c.wait_for_nodes()
        ray.init(address=c.address, log_to_driver=False, configure_logging=False)
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        if had_ray:
            start_local_ray()


class S3Server:
    """A moto S3 server on 127.0.0.1 with one bucket; ``uri(prefix)`` names a dataset in it."""

    BUCKET = "bench"

    def __init__(self) -> None:
        import socket

        from moto.server import ThreadedMotoServer

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> None:
        """Start (or start again) the server on its port; what was stored is still there."""
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        """Stop the server: every request fails until ``start``."""
        self._server.stop()

    def uri(self, prefix: str, **options: str) -> str:
        """Return the URI of a dataset under ``prefix`` in the bucket."""
        query = "&".join(f"{k}={v}" for k, v in {"endpoint_override": self.endpoint, "scheme": "http",
                                                   **options}.items())
        return f"s3://{self.BUCKET}/{prefix}?{query}"


@pytest.fixture(scope="session")
def s3_server():
    """Start one moto S3 server on loopback for the session (the module sets its credentials in the AWS variables)."""
    import logging

    pytest.importorskip("moto.server", reason="moto[server] is in the test extra: pip install -e '.[test]'")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = S3Server()
    server.start()
    import pyarrow.fs as pafs

    pafs.S3FileSystem(endpoint_override=server.endpoint, scheme="http", allow_bucket_creation=True).create_dir(
        S3Server.BUCKET)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_results(s3_server, request):
    """Return the URI of an empty dataset on the moto server, one prefix per test."""
    import re
    import secrets

    return s3_server.uri(f"{re.sub(r'[^A-Za-z0-9-]', '-', request.node.name)[:40]}-{secrets.token_hex(3)}")
