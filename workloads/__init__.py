"""Benchmark payloads: the workload protocol, its registry and the built-in families.

This package knows nothing of Ray: a workload is plain Python timed by a harness. Its public
names load on first use, so importing ``workloads.errors`` (every command does) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "Measurement": "workloads.base", "Metric": "workloads.base", "Service": "workloads.base",
    "WorkerContext": "workloads.base", "Workload": "workloads.base", "UserError": "workloads.errors",
    "Param": "workloads.params", "parse_params": "workloads.params", "get_workload": "workloads.registry",
    "load_workloads": "workloads.registry",
}

__all__ = ["Measurement", "Metric", "Param", "Service", "UserError", "WorkerContext", "Workload",
           "get_workload", "load_workloads", "parse_params"]


def __getattr__(name: str) -> Any:
    """Return a public name of the package, importing its module on first use (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'workloads' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
