"""The workload registry: built-in families plus the ``topobench.workloads`` entry points."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from workloads.base import Param, Workload
from workloads.errors import UserError

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


def _article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def _convert(workload: str, param: Param, raw: Any) -> Any:
    kind = param.kind
    where = f"{workload}.{param.name}"
    if isinstance(raw, str) and kind is not str:
        text = raw.strip()
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                value: Any = text.lower() in ("true", "1", "yes")
            elif kind is int:
                value = int(text)
            elif kind is float:
                value = float(text)
            else:
                value = kind(text)
        except ValueError:
            raise UserError(
                f"Parameter {where}={raw!r} is not a valid {kind.__name__}; "
                f"give {_article(kind.__name__)} {kind.__name__} such as {param.default!r}."
            ) from None
    else:
        value = raw
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise UserError(
                f"Parameter {where}={raw!r} is not a valid {kind.__name__}; "
                f"give {_article(kind.__name__)} {kind.__name__} such as {param.default!r}."
            )
    unit = f" {param.unit}" if param.unit else ""
    if param.minimum is not None and value < param.minimum:
        raise UserError(f"Parameter {where}={value} is below its minimum {param.minimum}{unit}; "
                        f"give a value of at least {param.minimum}.")
    if param.maximum is not None and value > param.maximum:
        raise UserError(f"Parameter {where}={value} is above its maximum {param.maximum}{unit}; "
                        f"give a value of at most {param.maximum}.")
    if param.choices is not None and value not in param.choices:
        raise UserError(f"Parameter {where}={value!r} is not one of {', '.join(param.choices)}; "
                        "pick one of those.")
    return value


def parse_params(cls: type[Workload], given: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``cls``'s parameters with defaults filled in and ``given`` converted and checked.

    Values may be strings (from the command line) or typed values (from a sweep file).

    Raises:
        UserError: an unknown name, a value of the wrong type, out of range or not a choice,
            or a cross-parameter rule of ``cls.validate`` broken.
    """
    by_name = {p.name: p for p in cls.params}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        names = ", ".join(by_name) or "none"
        raise UserError(
            f"Unknown parameter {cls.name}.{unknown[0]}; {cls.name} takes: {names}."
        )
    values = {p.name: p.default for p in cls.params}
    for name, raw in given.items():
        values[name] = _convert(cls.name, by_name[name], raw)
    cls.validate(values)
    return values


def split_params(cls: type[Workload], values: Mapping[str, Any], work_share: float) -> dict[str, Any]:
    """Return ``values`` with every ``split`` parameter scaled by ``work_share`` (strong scaling).

    Integers are rounded and never fall below the parameter's minimum (or 1).
    """
    out = dict(values)
    for p in cls.params:
        if p.split and work_share != 1.0:
            scaled = out[p.name] * work_share
            floor = p.minimum if p.minimum is not None else 1
            out[p.name] = max(floor, round(scaled)) if p.kind is int else max(floor, scaled)
    return out
