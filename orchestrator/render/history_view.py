"""A history as text: the series list, one series' points, and each change as an alert; table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

from orchestrator.analysis.regressions import Change, History, Regression, SeriesHistory
from orchestrator.analysis.series import Point
from orchestrator.render.numbers import percent, quantity

FORMATS = ("table", "json", "csv")

SERIES_HEADERS = ("series", "workload", "metric", "unit", "params", "shape", "host", "points", "latest",
                  "last change", "at", "ratio", "confirmed", "open regression")
POINT_HEADERS = ("#", "point", "runs", "value", "95% CI", "change")


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _ratio(change: Change | None) -> str:
    return "-" if change is None or change.ratio is None else f"{change.ratio:.3f}"


def _shape(s: SeriesHistory) -> str:
    k = s.series.key
    return f"{k.workers}w×{k.threads_per_worker}t×{k.nodes}n {k.placement} {k.mode}"


def _params(text: str) -> str:
    try:
        return " ".join(f"{k}={v}" for k, v in json.loads(text).items())
    except (ValueError, AttributeError):
        return text


def series_rows(history: History, open_ids: set[str]) -> list[dict[str, Any]]:
    """Return one row per series (``SERIES_HEADERS``): its latest value and its last change."""
    out = []
    for s in history.series:
        k, last = s.series.key, s.last_change
        latest = s.series.points[-1]
        out.append({"series": s.series.id, "workload": k.workload, "metric": k.metric, "unit": k.unit,
                    "params": _params(k.params), "shape": _shape(s), "host": k.fingerprint,
                    "points": len(s.series.points), "latest": _number(latest.value),
                    "last change": last.id if last else None, "at": last.first_bad.name if last else None,
                    "ratio": _number(last.ratio) if last else None,
                    "confirmed": last.confirmed if last else None, "open regression": s.series.id in open_ids})
    return out


def change_record(s: SeriesHistory, c: Change) -> dict[str, Any]:
    """Return everything an alert states about one change, as plain values (JSON)."""
    conf, det = c.confirmation, c.detection
    return {
        "id": c.id, "series": s.series.id, "series_description": s.series.key.describe(), "index": c.index,
        "kind": c.kind, "shape": c.shape, "group": c.group, "confirmed": c.confirmed,
        "last_good": {"point": c.last_good.name, "commit": c.last_good.commit, "label": c.last_good.label,
                      "runs": list(c.last_good.run_ids)},
        "first_bad": {"point": c.first_bad.name, "commit": c.first_bad.commit, "label": c.first_bad.label,
                      "runs": list(c.first_bad.run_ids)},
        "unbenchmarked_commits": c.unbenchmarked, "ratio": _number(c.ratio),
        "ratio_ci_low": _number(conf.ci_low), "ratio_ci_high": _number(conf.ci_high),
        "shift": _number(c.shift), "unit": s.series.key.unit, "noise_cv": _number(s.noise_cv),
        "detection_p": _number(det.p_value), "confirmation_p": _number(conf.p_value),
        "confirmation_p_adjusted": _number(conf.p_adjusted), "basis": conf.basis,
        "runs_before": conf.runs_before, "runs_after": conf.runs_after,
        "environment_changed": bool(c.environment), "environment": list(c.environment),
        "acknowledged": None if c.ack is None else {"reason": c.ack.reason, "by": c.ack.acked_by,
                                                    "at": str(c.ack.acked_at) if c.ack.acked_at else None},
    }


def _runs(point: Point) -> str:
    shown = ", ".join(point.run_ids[:3]) + (f", … ({len(point.run_ids)} runs)" if len(point.run_ids) > 3 else "")
    return f"{len(point.run_ids)} run{'s' if len(point.run_ids) != 1 else ''}: {shown}"


def alert_lines(s: SeriesHistory, c: Change) -> list[str]:
    """Return one change as the lines of an alert (what, where, how much, how sure, what else changed)."""
    conf, det, unit = c.confirmation, c.detection, s.series.key.unit
    status = "confirmed" if c.confirmed else "not confirmed"
    shape = f"{c.shape}, " if c.confirmed and c.shape != "step" else ""
    lines = [(f"{c.kind.upper()} {c.id} ({shape}{status}{', acknowledged' if c.ack else ''}) at point {c.index}: "
             f"{s.series.key.describe()}"),
             f"  last good {c.last_good.name} ({_runs(c.last_good)})",
             f"  first bad {c.first_bad.name} ({_runs(c.first_bad)})"]
    if c.unbenchmarked is not None:
        lines.append(f"  {c.unbenchmarked} commit(s) between them never benchmarked: "
                     f"git bisect start {c.first_bad.commit} {c.last_good.commit}")
    ci = ("" if conf.ci_low is None else f" (95% CI {conf.ci_low:.3f}–{conf.ci_high:.3f})")
    sign = "+" if c.shift >= 0 else "−"
    lines.append(f"  ratio {_ratio(c)}{ci}, {sign}{quantity(abs(c.shift), unit)}; series noise CV "
                 f"{percent(s.noise_cv)}")
    confirmation = ("not testable" if conf.p_value is None else
                    f"{conf.p_value:.2g} ({conf.basis}: {conf.runs_before} vs {conf.runs_after} runs; "
                    f"Benjamini-Hochberg {conf.p_adjusted:.2g})")
    lines.append(f"  detection p {det.p_value:.2g} (optimistic: the location was chosen); confirmation p "
                 f"{confirmation}" + ("" if conf.p_value is not None else f" — {conf.basis}"))
    if c.environment:
        lines.append("  environment changed: " + "; ".join(c.environment))
    if c.ack:
        lines.append(f"  acknowledged by {c.ack.acked_by or 'someone'} at {c.ack.acked_at}: {c.ack.reason}")
    return lines


def point_rows(s: SeriesHistory) -> list[dict[str, Any]]:
    """Return one row per point (``POINT_HEADERS``), a change marked on the first point after it."""
    marks = {c.index: c for c in s.changes}
    out = []
    for i, p in enumerate(s.series.points):
        c = marks.get(i)
        mark = "" if c is None else (f"▲ {c.id} {c.kind} ×{_ratio(c)}"
                                     f"{'' if c.confirmed else ' (not confirmed)'}{' (acknowledged)' if c.ack else ''}")
        out.append({"#": i, "point": p.name, "runs": len(p.run_ids), "value": _number(p.value),
                    "ci_low": _number(p.ci_low), "ci_high": _number(p.ci_high), "change": mark})
    return out


def history_json(history: History, open_regressions: Sequence[Regression]) -> str:
    """Return the series list with every change as JSON."""
    open_ids = {r.series.series.id for r in open_regressions}
    series = [{**row, "changes": [change_record(s, c) for c in s.changes]}
              for s, row in zip(history.series, series_rows(history, open_ids))]
    return json.dumps({"series": series, "hypotheses": history.family,
                       "open_regressions": [c.id for r in open_regressions for c in r.changes]}, indent=1)


def series_json(s: SeriesHistory) -> str:
    """Return one series' points and changes as JSON."""
    return json.dumps({"series": s.series.id, "description": s.series.key.describe(), "order": s.series.order,
                       "noise_cv": _number(s.noise_cv), "points": point_rows(s),
                       "changes": [change_record(s, c) for c in s.changes]}, indent=1, default=str)


def rows_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Return rows as CSV with a header line (None as empty)."""
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    return buf.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_history(history: History, open_regressions: Sequence[Regression], format: str, notes: Sequence[str],
                  threshold: float | None) -> None:
    """Print the series list (with the open regressions as alerts), or its JSON/CSV; notes on stderr."""
    import typer

    for note in notes:
        typer.echo(f"topobench: {note}", err=True)
    open_ids = {r.series.series.id for r in open_regressions}
    if format == "json":
        typer.echo(history_json(history, open_regressions))
    elif format == "csv":
        typer.echo(rows_csv(series_rows(history, open_ids)), nl=False)
    else:
        from rich.markup import escape
        from rich.table import Table

        from orchestrator.render.console import stdout_console

        console = stdout_console()
        table = Table(title=f"{len(history.series)} series; {history.family} hypotheses judged "
                            f"together (Benjamini-Hochberg, FDR {history.settings.fdr:g})")
        for h in (h for h in SERIES_HEADERS if h != "unit"):
            table.add_column(h, justify="right" if h in ("points", "latest", "ratio") else "left")
        for row in series_rows(history, open_ids):
            row["latest"] = quantity(row["latest"], row.pop("unit"))
            table.add_row(*(escape(_cell(v)) for v in row.values()), style="red" if row["open regression"] else None)
        console.print(table)
        for r in open_regressions:
            console.print("", highlight=False)
            for c in r.changes:
                console.print("\n".join(alert_lines(r.series, c)), highlight=False, markup=False)
    if open_regressions:
        limit = f" beyond {threshold:.1%}" if threshold is not None else ""
        typer.echo(f"topobench: {len(open_regressions)} open regression(s){limit}: "
                   + ", ".join(f"{r.changes[0].id} ({r.series.series.key.workload} {r.series.series.key.metric}, "
                               f"now ×{r.ratio_now:.3f})" for r in open_regressions), err=True)


def print_series(s: SeriesHistory, format: str, notes: Sequence[str]) -> None:
    """Print one series' points with its change points marked, then each change as an alert."""
    import typer

    for note in notes:
        typer.echo(f"topobench: {note}", err=True)
    if format == "json":
        typer.echo(series_json(s))
        return
    if format == "csv":
        typer.echo(rows_csv(point_rows(s)), nl=False)
        return
    from rich.markup import escape
    from rich.table import Table

    from orchestrator.render.console import stdout_console

    console = stdout_console()
    table = Table(title=escape(f"{s.series.id}: {s.series.key.describe()} — points in {s.series.order} order, "
                        f"noise CV {percent(s.noise_cv)}"))
    for h in POINT_HEADERS:
        table.add_column(h, justify="right" if h in ("#", "runs", "value") else "left")
    for row in point_rows(s):
        ci = "-" if row["ci_low"] is None else f"{row['ci_low']:.4g}–{row['ci_high']:.4g}"
        table.add_row(str(row["#"]), escape(row["point"]), str(row["runs"]), _cell(row["value"]), ci, escape(row["change"]),
                      style="bold" if row["change"] else None)
    console.print(table)
    for c in s.changes:
        console.print("", highlight=False)
        console.print("\n".join(alert_lines(s, c)), highlight=False, markup=False)


def change_points_json(found: Any) -> str:
    """Return a detector's change points as a JSON list: the first index after each, with its statistics."""
    return json.dumps([{"index": c.index, "segment_before": [c.start, c.index], "segment_after": [c.index, c.end],
                        "median_before": c.median_before, "median_after": c.median_after,
                        "relative_change": _number(c.relative_change), "effect_size": _number(c.effect_size),
                        "z": c.z, "p_value": c.p_value} for c in found.change_points], indent=1)
