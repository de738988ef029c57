"""A comparison of two runs as text rows, a terminal table, Markdown, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, fields

from rich.table import Table

from orchestrator.analysis.compare import CompareResult, MetricComparison
from orchestrator.render.numbers import si

HEADERS = ("workload", "params", "workers", "placement", "metric", "unit", "rounds", "base median",
           "new median", "ratio", "ratio 95% CI", "p", "p (Holm)", "flags", "verdict")


def params_cell(params: str) -> str:
    """Return a parameter JSON object as "k=v k=v" (the text itself when it is not JSON)."""
    try:
        return " ".join(f"{k}={v}" for k, v in json.loads(params).items())
    except (ValueError, AttributeError):
        return params


def flags_cell(r: MetricComparison) -> str:
    """Return each side's flags ("BASE noisy; NEW unstable"); "-" when neither has any."""
    sides = [f"{side} {', '.join(flags)}" for side, flags in (("BASE", r.base_flags), ("NEW", r.new_flags)) if flags]
    return "; ".join(sides) or "-"


def _ratio_text(r: MetricComparison) -> tuple[str, str]:
    if r.ratio is None:
        return "-", "-"
    ci = "-" if r.ratio_ci_low is None else f"{r.ratio_ci_low:.3f}–{r.ratio_ci_high:.3f}"
    return f"{r.ratio:.3f}", ci


def text_rows(result: CompareResult) -> list[list[str]]:
    """Return one row of cells (``HEADERS``) per metric comparison."""
    out = []
    for r in result.rows:
        ratio, ci = _ratio_text(r)
        verdict = r.verdict + (" (REGRESSION)" if r.regression else "")
        if r.caveat:
            verdict += ", weakened by the flags"  # which ones: the flags cell beside it
        p_values = ("-" if p is None else f"{p:.2g}" for p in (r.p_value, r.p_adjusted))
        out.append([r.workload, params_cell(r.params), str(r.workers), r.placement, r.metric, r.unit,
                    f"{r.base_n}/{r.new_n}", si(r.base_median), si(r.new_median), ratio, ci, *p_values,
                    flags_cell(r), verdict])
    return out


def comparison_table(result: CompareResult) -> Table:
    """Return the comparison as a terminal table, slower rows red and faster rows green."""
    table = Table(title=f"topobench compare {result.base_run} → {result.new_run} (units: rounds; Mann-Whitney U, "
                        f"Holm across all {len(result.rows)} metrics at α={result.alpha:g}; ratio = NEW/BASE "
                        "of the medians)")
    numbers = ("workers", "rounds", "base median", "new median", "ratio", "p", "p (Holm)")
    for h in HEADERS:
        table.add_column(h, justify="right" if h in numbers else "left")
    for r, cells in zip(result.rows, text_rows(result)):
        table.add_row(*cells, style={"slower": "red", "faster": "green"}.get(r.verdict))
    if weakened_text(result):
        table.caption, table.caption_justify = weakened_text(result), "left"
    return table


def comparison_markdown(result: CompareResult) -> str:
    """Return the comparison as a GitHub-flavoured Markdown table."""
    lines = [(f"Comparison of run `{result.new_run}` (NEW) against `{result.base_run}` (BASE) over rounds; "
              f"ratio = NEW/BASE of the medians; verdicts by Holm across all metrics at α={result.alpha:g}."), "",
             "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for cells in text_rows(result):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", line] if (line := weakened_text(result)) else []
    lines += [f"Note: {n}" for n in result.notes]
    for label, items in (("Only in BASE", result.only_base), ("Only in NEW", result.only_new)):
        if items:
            lines += ["", f"{label}:", *(f"- {i}" for i in items)]
    return "\n".join(lines) + "\n"


def weakened_text(result: CompareResult) -> str:
    """Return why a verdict beside a flag is weaker, when some row has one; "" otherwise."""
    if not any(r.caveat for r in result.rows):
        return ""
    return ("A verdict beside a flag is weaker: the test assumes rounds that differ only by chance, and a flag "
            "(unstable: CV above --max-cv; noisy: other CPUs busy; desynchronized: workers ran apart; ...) says "
            "they may not. Rerun the flagged side on a quiet machine before acting on it.")


def comparison_csv(result: CompareResult) -> str:
    """Return one CSV line per metric comparison (every ``MetricComparison`` field) with a header."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(MetricComparison)], lineterminator="\n")
    writer.writeheader()
    for r in result.rows:
        writer.writerow({**asdict(r), "base_flags": " ".join(r.base_flags), "new_flags": " ".join(r.new_flags)})
    return buf.getvalue()


def comparison_json(result: CompareResult) -> str:
    """Return the comparison as JSON: runs, threshold, rows, unmatched configurations, notes."""
    return json.dumps({"base_run": result.base_run, "new_run": result.new_run,
                       "threshold": result.threshold, "rows": [asdict(r) for r in result.rows],
                       "only_base": list(result.only_base), "only_new": list(result.only_new),
                       "notes": list(result.notes)}, indent=1)


def print_comparison(result: CompareResult, format: str, skipped: Sequence[str] = ()) -> None:
    """Print a comparison as a table (stdout) or in ``format``; warnings and regressions on stderr."""
    import typer

    for line in (*(f"skipped {s}" for s in skipped), *result.notes):
        typer.echo(f"topobench: warning: {line}", err=True)
    if format == "table":
        from orchestrator.render.console import stdout_console

        console = stdout_console()
        console.print(comparison_table(result))
        for label, items in (("only in BASE", result.only_base), ("only in NEW", result.only_new)):
            for item in items:
                console.print(f"{label}: {item}", highlight=False)
    else:
        text = {"csv": comparison_csv, "json": comparison_json, "markdown": comparison_markdown}[format](result)
        typer.echo(text, nl=not text.endswith("\n"))
    if result.regressions:
        names = ", ".join(f"{r.workload}:{r.metric} ({r.ratio:.3f}x{', weakened by ' + r.caveat if r.caveat else ''})"
                          for r in result.regressions)
        typer.echo(f"topobench: {len(result.regressions)} regression(s) beyond {result.threshold:.1%}: {names}",
                   err=True)
