"""Shared fixtures: one real embedded Ray for the in-process integration tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Tests never attach to a cluster that happens to run on the host.
os.environ.pop("RAY_ADDRESS", None)
os.environ.setdefault("RAY_AUTH_MODE", "token")
sys.path.insert(0, str(Path(__file__).parent))  # tests import helpers such as sysfs_builder

RAY_TEST_CPUS = 2
RAY_TEST_OBJECT_STORE = 200 * 2**20


@pytest.fixture(scope="session")
def ray_local():
    """Start a private local Ray (2 CPUs, 200 MiB object store) once for the session."""
    import ray

    ray.init("local", num_cpus=RAY_TEST_CPUS, object_store_memory=RAY_TEST_OBJECT_STORE,
             include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


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
    """Start one moto S3 server on loopback for the session, with credentials in the usual variables.

    The AWS variables hold moto's test credentials (moto accepts any); IMDS lookups are off so
    that nothing waits on a cloud metadata service.
    """
    import logging

    pytest.importorskip("moto.server", reason="moto[server] is in the test extra: pip install -e '.[test]'")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    server = S3Server()
    server.start()
    import pyarrow.fs as pafs

    pafs.S3FileSystem(endpoint_override=server.endpoint, scheme="http", allow_bucket_creation=True).create_dir(
        S3Server.BUCKET)
    try:
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture
def s3_results(s3_server, request):
    """Return the URI of an empty dataset on the moto server, one prefix per test."""
    import re
    import secrets

    return s3_server.uri(f"{re.sub(r'[^A-Za-z0-9-]', '-', request.node.name)[:40]}-{secrets.token_hex(3)}")
