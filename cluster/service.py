"""The actor that hosts a workload's shared ``Service`` (e.g. the ``net.http`` server) on one node."""

from __future__ import annotations

from typing import Any

import ray

from workloads.registry import get_workload


@ray.remote(num_cpus=0)
class ServiceHost:
    """Runs ``get_workload(workload).service(params)`` on the node it is placed on.

    It requests no CPU so it can share a node with that node's workers; it binds the node's
    IP so workers on other nodes reach it over the real network.
    """

    def __init__(self, workload: str, params: dict[str, Any]) -> None:
        cls = get_workload(workload)
        self._service = cls.service(params)

    def start(self) -> dict[str, Any]:
        """Start serving on this node's IP; return the endpoint ({"host", "port"})."""
        return self._service.start(ray.util.get_node_ip_address())

    def stop(self) -> None:
        """Stop serving."""
        self._service.stop()
