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
