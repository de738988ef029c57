"""Typed workload parameters: declaration, conversion from text or TOML, range checks, splitting."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workloads.errors import UserError

if TYPE_CHECKING:
    from workloads.base import Workload


@dataclass(frozen=True, slots=True)
class Param:
    """One workload parameter: its type, default, unit and allowed range.

    ``minimum``/``maximum`` are inclusive bounds for numbers; ``choices`` restricts
    strings. ``unit`` is the unit of the value as the user writes it ("MiB", "s", "").
    ``split`` marks a size that strong scaling divides among the workers (each worker
    gets ``value * work_share``, at least ``minimum``).
    """

    name: str
    default: Any
    help: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    split: bool = False

    @property
    def kind(self) -> type:
        """Return the Python type of the value (taken from the default)."""
        return type(self.default)


def _article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def _type_error(where: str, raw: Any, param: Param) -> UserError:
    kind = param.kind.__name__
    return UserError(f"Parameter {where}={raw!r} is not a valid {kind}; "
                     f"give {_article(kind)} {kind} such as {param.default!r}.")


def _convert(workload: str, param: Param, raw: Any) -> Any:
    kind = param.kind
    where = f"{workload}.{param.name}"
    if isinstance(raw, str) and kind is not str:
        text = raw.strip().lower()
        try:
            if kind is bool:
                if text not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                value: Any = text in ("true", "1", "yes")
            else:
                value = kind(text)
        except ValueError:
            raise _type_error(where, raw, param) from None
    else:
        value = raw
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _type_error(where, raw, param)
    if kind is float and not math.isfinite(value):
        raise UserError(f"Parameter {where}={raw!r} is not a finite number; "
                        f"give a finite {kind.__name__} such as {param.default!r}.")
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
        UserError: an unknown name, a value of the wrong type, not finite, out of range or
            not a choice, or a cross-parameter rule of ``cls.validate`` broken.
    """
    by_name = {p.name: p for p in cls.params}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        names = ", ".join(by_name) or "none"
        raise UserError(f"Unknown parameter {cls.name}.{unknown[0]}; {cls.name} takes: {names}.")
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


def params_text(params: Mapping[str, Any]) -> str:
    """Return parameters as "k=v k=v" ("" when empty)."""
    return " ".join(f"{k}={v}" for k, v in params.items())
