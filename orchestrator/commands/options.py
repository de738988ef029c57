"""Option types shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

AddressOption = Annotated[str | None, typer.Option(
    "--address", help="Ray cluster to use: host:port or 'auto' (default: $RAY_ADDRESS, else an embedded local Ray).")]
ResultsOption = Annotated[Path, typer.Option("--results", help="Results dataset folder.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RESULTS = Path("results")
