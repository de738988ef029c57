"""The one place errors a user can cause become messages: one line on stderr, and the exit code.

``UserError`` (bad input, a plan that cannot be met): exit 2. ``StoreError`` (the results
folder filled up or turned read-only mid-run): exit 1, what finished is kept. Ctrl-C: 130;
SIGTERM: 143 (the run says what it kept before). Internal faults keep their traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer

from orchestrator.pipeline.interrupts import Terminated, take_sigterm
from workloads.errors import StoreError, UserError


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command: one sentence on stderr and the right exit code for what a user can cause."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            typer.echo(f"topobench: error: {exc}", err=True)
            raise typer.Exit(2) from None
        except StoreError as exc:
            typer.echo(f"topobench: error: {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as exc:
            raise typer.Exit(143 if take_sigterm() or isinstance(exc, Terminated) else 130) from None

    return wrapper
