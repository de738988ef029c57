"""``topobench workloads``: every workload, its parameters, units and metrics."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from orchestrator.commands.options import JsonOption

if TYPE_CHECKING:
    from rich.table import Table


def workload_catalog() -> list[dict[str, Any]]:
    """Return every registered workload as plain data (name, summary, source, op, params, metrics)."""
    from workloads.registry import load_workloads

    out = []
    for name, cls in load_workloads().items():
        out.append({
            "name": name,
            "summary": cls.summary,
            "source": cls.source,
            "op": cls.op,
            "params": [{"name": p.name, "default": p.default, "unit": p.unit, "help": p.help,
                        "minimum": p.minimum, "maximum": p.maximum,
                        "choices": list(p.choices) if p.choices else None} for p in cls.params],
            "metrics": [{"name": m.name, "unit": m.unit, "better": m.better, "description": m.description}
                        for m in cls.all_metrics()],
        })
    return out


def workload_table(catalog: list[dict[str, Any]]) -> Table:
    """Return a table with one row per workload: what it measures, its parameters and metrics."""
    from rich.table import Table

    table = Table(title="topobench workloads", show_lines=True)
    for column in ("workload", "measures", "parameters (default, unit)", "metrics (unit)"):
        table.add_column(column)
    for w in catalog:
        params = "\n".join(f"{p['name']}={p['default']!r}" + (f" {p['unit']}" if p["unit"] else "")
                           for p in w["params"]) or "-"
        metrics = "\n".join(f"{m['name']} ({m['unit']})" if m["unit"] else m["name"] for m in w["metrics"])
        table.add_row(w["name"], f"{w['summary']}\none op = {w['op']}\nsource: {w['source']}", params, metrics)
    return table


def workloads(json_output: JsonOption = False) -> None:
    """List every registered workload with its parameters, units and metrics."""
    catalog = workload_catalog()
    if json_output:
        typer.echo(json.dumps(catalog, indent=1))
        return
    from orchestrator.render.console import stdout_console

    stdout_console().print(workload_table(catalog))
