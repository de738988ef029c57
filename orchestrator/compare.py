"""``topobench compare BASE NEW``: did any metric change significantly between two runs?

Trials are matched by workload, parameters, nodes, workers, placement, threads per worker
and mode; each metric's measured (non-warm-up) per-sample values of both runs go through
``stats.compare`` (ratio of medians with a bootstrap CI, Mann-Whitney U p-value, verdict).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer

from workloads.errors import UserError

FORMATS = ("table", "csv", "json", "markdown")
_LATEST = re.compile(r"^latest(?:~(\d+))?$")
_KEY = ("workload", "params", "nodes", "workers", "placement", "threads_per_worker", "mode")


@dataclass(frozen=True, slots=True)
class MetricComparison:
    """One metric of one matched trial configuration, BASE against NEW."""

    workload: str
    params: str
    """Workload parameters as JSON."""
    nodes: int
    workers: int
    placement: str
    metric: str
    unit: str
    higher_is_better: bool
    base_n: int
    new_n: int
    base_median: float
    new_median: float
    ratio: float | None
    """NEW/BASE of the medians; None when BASE's median is 0."""
    ratio_ci_low: float | None
    ratio_ci_high: float | None
    p_value: float | None
    verdict: str
    """faster | slower | no significant change | n/a."""
    regression: bool
    """Significantly worse by more than the --fail-on-regression threshold."""


@dataclass(frozen=True, slots=True)
class CompareResult:
    """All metric comparisons of two runs plus the configurations only one run has."""

    base_run: str
    new_run: str
    rows: tuple[MetricComparison, ...]
    only_base: tuple[str, ...]
    only_new: tuple[str, ...]
    threshold: float | None
    alpha: float = 0.01

    @property
    def regressions(self) -> tuple[MetricComparison, ...]:
        """Return the rows that count as regressions."""
        return tuple(r for r in self.rows if r.regression)


def parse_threshold(text: str) -> float:
    """Parse "5%" or "0.05" into a fraction (0.05); raise UserError when not in [0, 1)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0 or math.isnan(value):
        raise UserError(f"--fail-on-regression {text!r} is not a percentage; give one such as 5% or 0.05.")
    return value


def resolve_run_id(con, ref: str) -> str:
    """Return the run id ``ref`` names: an id, ``latest`` or ``latest~N`` (N runs before the newest).

    Raises:
        UserError: a malformed id, an id not in the dataset, or ``latest~N`` past the oldest run.
    """
    from orchestrator.store import validate_run_id

    ids = [r[0] for r in con.execute("SELECT DISTINCT run_id FROM runs ORDER BY run_id DESC").fetchall()]
    match = _LATEST.match(ref.strip())
    if match:
        back = int(match.group(1) or 0)
        if back >= len(ids):
            raise UserError(f"Run {ref!r} does not exist: the results folder has {len(ids)} run(s); "
                            "`topobench query \"SELECT run_id FROM runs\"` lists them.")
        return ids[back]
    validate_run_id(ref)
    if ref not in ids:
        raise UserError(f"Run {ref!r} is not in the results folder; `topobench query \"SELECT run_id "
                        "FROM runs\"` lists the runs there, or pass another folder with --results DIR.")
    return ref


def _load_samples(con, run_id: str) -> dict[tuple, dict]:
    """Return {(config key..., metric): {"values": [...], "unit", "higher_is_better"}} of one run."""
    sql = f"""
        SELECT t.workload, t.params, t.nodes, t.workers, t.placement, t.threads_per_worker, t.mode,
               t.metric, t.unit, t.higher_is_better, s.value
        FROM samples s JOIN trials t
          ON s.run_id = t.run_id AND s.trial_id = t.trial_id AND s.metric = t.metric
        WHERE s.run_id = ? AND NOT s.warmup AND t.status = 'ok'
        ORDER BY {", ".join("t." + k for k in _KEY)}, t.metric
    """
    out: dict[tuple, dict] = {}
    for row in con.execute(sql, [run_id]).fetchall():
        key = (*row[:7], row[7])
        entry = out.setdefault(key, {"values": [], "unit": row[8], "higher_is_better": bool(row[9])})
        if row[10] is not None and math.isfinite(row[10]):
            entry["values"].append(row[10])
    return out


def _describe(key: tuple) -> str:
    workload, params, nodes, workers, placement = key[:5]
    return f"{workload} {params} nodes={nodes} workers={workers} placement={placement}"


def smallest_p(n1: int, n2: int) -> float:
    """Return the smallest two-sided p-value the Mann-Whitney U test in ``stats.compare`` can give.

    It is reached when the two samples do not overlap at all; computed by the same scipy
    call, so it follows scipy's choice of the exact distribution (small samples, 2 / C(n1+n2,
    n1); Mann & Whitney 1947) or the normal approximation (larger ones). At or above alpha, no
    difference can ever be called significant: 3 vs 3 samples give 0.1.
    """
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(range(n1), range(n1, n1 + n2), alternative="two-sided").pvalue)


def compare_runs(results: Path, base: str, new: str, *, threshold: float | None = None,
                 alpha: float = 0.01, seed: int = 0) -> CompareResult:
    """Compare every metric of matched trials of run ``new`` against run ``base`` in ``results``.

    Args:
        results: the results dataset folder.
        base, new: run ids, ``latest`` or ``latest~N``.
        threshold: fraction (0.05 = 5%) beyond which a significant slowdown is a regression;
            None marks no row as a regression.
        alpha: significance level of the Mann-Whitney U test.
        seed: seed of the bootstrap (results are reproducible).

    Raises:
        UserError: missing results folder, bad or unknown run ids, or no trials in common.
    """
    from orchestrator.analysis.stats import compare, regression
    from orchestrator.query import connect

    if not Path(results).is_dir():
        raise UserError(f"Results folder {str(results)!r} does not exist; run `topobench run` first "
                        "or pass the folder with --results DIR.")
    con = connect(results)
    try:
        base_id, new_id = resolve_run_id(con, base), resolve_run_id(con, new)
        base_data, new_data = _load_samples(con, base_id), _load_samples(con, new_id)
    finally:
        con.close()
    rows = []
    for key in sorted(base_data.keys() & new_data.keys(), key=str):
        b, n = base_data[key], new_data[key]
        if not b["values"] or not n["values"]:
            continue
        hib = n["higher_is_better"]
        common = dict(zip(_KEY, key[:7]))
        fields = {"workload": common["workload"], "params": common["params"], "nodes": common["nodes"],
                  "workers": common["workers"], "placement": common["placement"], "metric": key[7],
                  "unit": n["unit"], "higher_is_better": hib, "base_n": len(b["values"]),
                  "new_n": len(n["values"])}
        try:
            c = compare(b["values"], n["values"], higher_is_better=hib, alpha=alpha, seed=seed)
        except ValueError:  # BASE median 0: ratio undefined
            import numpy as np

            rows.append(MetricComparison(**fields, base_median=float(np.median(b["values"])),
                                         new_median=float(np.median(n["values"])), ratio=None,
                                         ratio_ci_low=None, ratio_ci_high=None, p_value=None,
                                         verdict="n/a", regression=False))
            continue
        verdict = c.verdict
        if verdict == "no significant change" and smallest_p(fields["base_n"], fields["new_n"]) >= alpha:
            verdict = f"too few samples to tell (n={fields['base_n']} vs {fields['new_n']})"
        rows.append(MetricComparison(
            **fields, base_median=c.base_median, new_median=c.new_median, ratio=c.ratio,
            ratio_ci_low=c.ratio_ci_low, ratio_ci_high=c.ratio_ci_high, p_value=c.p_value,
            verdict=verdict, regression=threshold is not None and regression(c, threshold)))
    configs_b = {k[:7] for k in base_data}
    configs_n = {k[:7] for k in new_data}
    if not rows:
        raise UserError(f"Runs {base_id} and {new_id} have no trial in common (same workload, parameters, "
                        "nodes, workers and placement); compare runs of the same benchmark.")
    return CompareResult(base_id, new_id, tuple(rows),
                         tuple(sorted(_describe(k) for k in configs_b - configs_n)),
                         tuple(sorted(_describe(k) for k in configs_n - configs_b)), threshold, alpha)


def _num(value: float | None) -> str:
    from orchestrator.format import si

    return si(value)


def _ratio_text(r: MetricComparison) -> tuple[str, str]:
    if r.ratio is None:
        return "-", "-"
    ci = "-" if r.ratio_ci_low is None else f"{r.ratio_ci_low:.3f}–{r.ratio_ci_high:.3f}"
    return f"{r.ratio:.3f}", ci


def _params_text(params: str) -> str:
    try:
        return " ".join(f"{k}={v}" for k, v in json.loads(params).items())
    except (ValueError, AttributeError):
        return params


def _p_text(p: float | None) -> str:
    return "-" if p is None else f"{p:.2g}"


_HEADERS = ("workload", "params", "workers", "placement", "metric", "unit", "base median",
            "new median", "ratio", "ratio 95% CI", "p", "verdict")


def _text_rows(result: CompareResult) -> list[list[str]]:
    out = []
    for r in result.rows:
        ratio, ci = _ratio_text(r)
        verdict = r.verdict + (" (REGRESSION)" if r.regression else "")
        out.append([r.workload, _params_text(r.params), str(r.workers), r.placement, r.metric, r.unit,
                    _num(r.base_median), _num(r.new_median), ratio, ci, _p_text(r.p_value), verdict])
    return out


def format_table(result: CompareResult):
    """Return a rich Table of the comparison, slower rows red and faster rows green."""
    from rich.table import Table

    table = Table(title=f"topobench compare {result.base_run} → {result.new_run} "
                        f"(Mann-Whitney U, α={result.alpha:g}; ratio = NEW/BASE of the medians)")
    for h in _HEADERS:
        table.add_column(h, justify="right" if h in ("workers", "base median", "new median", "ratio", "p") else "left")
    for r, cells in zip(result.rows, _text_rows(result)):
        style = {"slower": "red", "faster": "green"}.get(r.verdict)
        table.add_row(*cells, style=style)
    return table


def format_markdown(result: CompareResult) -> str:
    """Return the comparison as a GitHub-flavoured Markdown table."""
    lines = [(f"Comparison of run `{result.new_run}` (NEW) against `{result.base_run}` (BASE); "
              "ratio = NEW/BASE of the medians."), "",
             "| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
    for cells in _text_rows(result):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    for label, items in (("Only in BASE", result.only_base), ("Only in NEW", result.only_new)):
        if items:
            lines += ["", f"{label}:", *(f"- {i}" for i in items)]
    return "\n".join(lines) + "\n"


def format_csv(result: CompareResult) -> str:
    """Return one CSV line per metric comparison (all MetricComparison fields) with a header."""
    buf = io.StringIO()
    names = list(MetricComparison.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for r in result.rows:
        writer.writerow(asdict(r))
    return buf.getvalue()


def format_json(result: CompareResult) -> str:
    """Return the comparison as JSON: runs, threshold, rows, unmatched configurations."""
    return json.dumps({"base_run": result.base_run, "new_run": result.new_run,
                       "threshold": result.threshold, "rows": [asdict(r) for r in result.rows],
                       "only_base": list(result.only_base), "only_new": list(result.only_new)}, indent=1)


def print_result(result: CompareResult, fmt: str, console=None) -> None:
    """Print ``result`` in ``fmt`` (table | csv | json | markdown) to stdout."""
    if fmt == "csv":
        typer.echo(format_csv(result), nl=False)
    elif fmt == "json":
        typer.echo(format_json(result))
    elif fmt == "markdown":
        typer.echo(format_markdown(result), nl=False)
    else:
        from orchestrator.console import stdout_console

        console = console or stdout_console()
        console.print(format_table(result))
        for label, items in (("only in BASE", result.only_base), ("only in NEW", result.only_new)):
            for item in items:
                console.print(f"{label}: {item}", highlight=False)


def compare_command(
    base: Annotated[str, typer.Argument(help="BASE run: a run id, 'latest' or 'latest~N'.")],
    new: Annotated[str, typer.Argument(help="NEW run: a run id, 'latest' or 'latest~N'.")],
    results: Annotated[Path, typer.Option("--results", help="Results dataset folder.")] = Path("results"),
    format: Annotated[str, typer.Option("--format", help="table | csv | json | markdown")] = "table",
    fail_on_regression: Annotated[str | None, typer.Option(
        "--fail-on-regression", help="Exit 1 when a metric is significantly worse by more than this (5% or 0.05).")] = None,
    alpha: Annotated[float, typer.Option(help="Significance level of the Mann-Whitney U test.")] = 0.01,
) -> None:
    """Compare two runs metric by metric: medians, NEW/BASE ratio with CI, p-value, verdict."""
    if format not in FORMATS:
        raise UserError(f"--format {format!r} is not one of {', '.join(FORMATS)}; pick one of those.")
    if not 0.0 < alpha < 1.0:
        raise UserError(f"--alpha {alpha} is not in (0, 1); give a level such as 0.01.")
    threshold = None if fail_on_regression is None else parse_threshold(fail_on_regression)
    result = compare_runs(results, base, new, threshold=threshold, alpha=alpha)
    print_result(result, format)
    if result.regressions:
        names = ", ".join(f"{r.workload}:{r.metric} ({r.ratio:.3f}x)" for r in result.regressions)
        typer.echo(f"topobench: {len(result.regressions)} regression(s) beyond "
                   f"{threshold:.1%}: {names}", err=True)
        raise typer.Exit(1)

