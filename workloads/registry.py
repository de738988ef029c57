"""The workload registry: built-in families plus the ``topobench.workloads`` entry points."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from workloads.errors import UserError

if TYPE_CHECKING:
    from workloads.base import Workload

ENTRY_POINT_GROUP = "topobench.workloads"

# Modules of the built-in families; each defines Workload subclasses decorated @register.
BUILTIN_MODULES: tuple[str, ...] = (
    "workloads.cpu",
    "workloads.memory",
    "workloads.cache",
    "workloads.garbage",
    "workloads.storage",
    "workloads.database",
    "workloads.network",
    "workloads.command",
)

_REGISTRY: dict[str, type[Workload]] = {}
_loaded = False


def register(cls: type[Workload]) -> type[Workload]:
    """Add a workload class under its ``name``; used as a class decorator."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"workload {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def load_workloads() -> dict[str, type[Workload]]:
    """Return every registered workload by name (built-ins, then entry points), sorted."""
    global _loaded
    if not _loaded:
        from workloads.base import (
            Workload,  # the families import it too; here only to check entry points
        )

        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Workload)):
                raise TypeError(f"entry point {ep.name!r} ({ep.value}) is not a Workload subclass")
            register(cls)
        _loaded = True
    return dict(sorted(_REGISTRY.items()))


def get_workload(name: str) -> type[Workload]:
    """Return the workload class called ``name``; ``UserError`` lists the known ones."""
    known = load_workloads()
    if name not in known:
        raise UserError(
            f"Unknown workload {name!r}; choose one of: {', '.join(known)} "
            "(`topobench workloads` lists them with their parameters)."
        )
    return known[name]
