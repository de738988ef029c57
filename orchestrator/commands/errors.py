"""The one place a ``UserError`` becomes a message: one line on stderr, exit code 2."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

from workloads.errors import UserError


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so a ``UserError`` prints "topobench: error: <sentence>" and exits 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            typer.echo(f"topobench: error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper
