"""The stdout console every command prints its tables to."""

from __future__ import annotations

import sys

from rich.console import Console

# Piped or captured output gets a wide page instead of rich's 80-column fallback, so
# tables stay one row per line in logs and CI output.
PIPE_WIDTH = 160


def stdout_console() -> Console:
    """Return a console on stdout: the terminal's width, or ``PIPE_WIDTH`` columns when piped."""
    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)
