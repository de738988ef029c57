"""Benchmark payloads: the workload protocol, its registry and the built-in families.

This package knows nothing of Ray: a workload is plain Python timed by a harness.
"""

from workloads.base import Measurement, Metric, Service, WorkerContext, Workload
from workloads.errors import UserError
from workloads.params import Param, parse_params
from workloads.registry import get_workload, load_workloads

__all__ = [
    "Measurement",
    "Metric",
    "Param",
    "Service",
    "UserError",
    "WorkerContext",
    "Workload",
    "get_workload",
    "load_workloads",
    "parse_params",
]
