"""``topobench report RUN``: report.md and a self-contained report.html with matplotlib plots.

Sections: run summary, per-workload sample distributions per node and worker, scaling
curves with the Amdahl/USL fits and the ideal line (when the run has a ``scaling`` table),
throughput against working set with L1/L2/L3 marked (``memory.random_access`` sweeps), the
environment of every node, and, with ``--vs NEW``, the comparison against another run.
The HTML embeds every PNG as a base64 data URI, so it is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from workloads.errors import UserError

MAX_BOX_GROUPS = 48
"""Most boxes in one distribution plot; more groups are cut with a note."""


@dataclass
class Section:
    """One report section: a title, paragraphs, tables (headers, rows) and PNG files."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """Where a report was written."""

    markdown: Path
    html: Path
    images: tuple[Path, ...]


def _rows(con, sql: str, args: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _fmt(value: Any) -> str:
    from orchestrator.format import si

    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return si(value) if math.isfinite(value) else "-"
    return str(value)


def _params_text(params: str | None) -> str:
    try:
        return " ".join(f"{k}={v}" for k, v in json.loads(params or "{}").items())
    except (ValueError, AttributeError):
        return params or ""


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")[:80] or "plot"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _summary_section(run: dict[str, Any], trials: list[dict[str, Any]]) -> Section:
    """Return the run's header and its trials table (one line per trial and metric)."""
    from orchestrator.format import percent

    s = Section("Run")
    total = run.get("trials_total") or 0
    missed = [t for t in trials if t.get("target") and " fail" in f" {t['target']}"]
    targets = f"; **{len(missed)} metric(s) missed a target**" if missed else ""
    s.paragraphs.append(f"Run `{run['run_id']}`, status **{run.get('status')}**{targets}, started "
                        f"{run.get('started_at')}, {total} trial{'' if total == 1 else 's'} "
                        f"({run.get('trials_failed') or 0} failed).")
    if run.get("command"):
        s.paragraphs.append(f"Command: `{run['command']}`")
    headers = ["workload", "params", "workers", "placement", "metric", "n", "median", "95% CI",
               "CV", "aggregate", "unit", "flags", "target", "status"]
    rows = []
    for t in trials:
        ci = "-" if t.get("ci_low") is None else f"{_fmt(t['ci_low'])}– {_fmt(t['ci_high'])}"
        rows.append([t["workload"], _params_text(t.get("params")), _fmt(t.get("workers")), t.get("placement") or "",
                     t["metric"], _fmt(t.get("n")), _fmt(t.get("median")), ci, percent(t.get("cv")),
                     _fmt(t.get("aggregate_throughput")), t.get("unit") or "",
                     ", ".join(t.get("flags") or ()), t.get("target") or "",
                     t.get("status") if t.get("status") == "ok" else f"failed: {t.get('error')}"])
    s.tables.append((headers, rows))
    return s


def _distribution_section(con, run_id: str, out: Path) -> Section:
    """Return box-and-strip plots of each workload's primary metric per trial, node and worker."""
    import numpy as np

    plt = _pyplot()
    s = Section("Distributions")
    s.paragraphs.append("Each box is one worker's measured samples (warm-up excluded) of the workload's "
                        "primary metric; dots are the samples, whiskers 1.5 IQR.")
    data = _rows(con, """
        SELECT s.workload, s.trial_id, t.workers, t.placement, t.params, s.hostname, s.worker_rank,
               s.metric, s.unit, s.value
        FROM samples s JOIN trials t ON s.run_id = t.run_id AND s.trial_id = t.trial_id AND s.metric = t.metric
        WHERE s.run_id = ? AND NOT s.warmup AND t.overlap IS NOT NULL
        ORDER BY s.workload, t.workers, t.placement, t.params, s.hostname, s.worker_rank""", [run_id])
    by_workload: dict[str, dict[str, list[float]]] = {}
    units: dict[str, tuple[str, str]] = {}
    for r in data:
        label = (f"{r['workers']}w {r['placement']} {_params_text(r['params'])[:30]}\n"
                 f"{r['hostname']} r{r['worker_rank']}")
        by_workload.setdefault(r["workload"], {}).setdefault(label, []).append(r["value"])
        units[r["workload"]] = (r["metric"], r["unit"])
    if not by_workload:
        s.paragraphs.append("No measured samples in this run.")
    for workload, groups in by_workload.items():
        labels = list(groups)[:MAX_BOX_GROUPS]
        values = [np.asarray(groups[k]) for k in labels]
        fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(labels) + 2), 4.2))
        ax.boxplot(values, showfliers=False)
        ax.set_xticks(range(1, len(labels) + 1), labels)
        rng = np.random.default_rng(0)
        for i, v in enumerate(values, start=1):
            ax.plot(i + rng.uniform(-0.12, 0.12, v.size), v, "o", ms=3, alpha=0.6, color="tab:blue")
        metric, unit = units[workload]
        ax.set_ylabel(f"{metric} ({unit})")
        ax.set_title(f"{workload}: {metric} per worker")
        ax.tick_params(axis="x", labelsize=7, labelrotation=60 if len(labels) > 6 else 0)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = out / f"dist_{_slug(workload)}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        s.images.append(path)
        if len(groups) > MAX_BOX_GROUPS:
            s.paragraphs.append(f"{workload}: only the first {MAX_BOX_GROUPS} of {len(groups)} workers are shown.")
    return s


def _scaling_section(con, run_id: str, out: Path) -> Section | None:
    """Return scaling curves with ideal, Amdahl and USL lines; None without a scaling table."""
    import numpy as np

    try:
        data = _rows(con, "SELECT * FROM scaling WHERE run_id = ? ORDER BY workload, params, series, n", [run_id])
    except Exception:  # noqa: BLE001 - no scaling view in this dataset version
        return None
    if not data:
        return None
    plt = _pyplot()
    s = Section("Scaling")
    series: dict[tuple, list[dict[str, Any]]] = {}
    for r in data:
        series.setdefault((r["workload"], r["params"], r["dimension"], r["series"], r["metric"]), []).append(r)
    headers = ["workload", "series", "N", "throughput", "speedup", "efficiency", "Karp-Flatt", "verdict"]
    rows = []
    for key, points in series.items():
        workload, params, dimension, name, metric = key
        n = np.array([p["n"] for p in points], dtype=float)
        x = np.array([p["throughput_median"] for p in points], dtype=float)
        first = points[0]
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        lo = [p["throughput_ci_low"] for p in points]
        hi = [p["throughput_ci_high"] for p in points]
        if all(v is not None for v in lo + hi):
            ax.errorbar(n, x, yerr=[x - np.array(lo), np.array(hi) - x], fmt="o", color="black",
                        capsize=3, label="measured (median, 95% CI)")
        else:
            ax.plot(n, x, "o", color="black", label="measured (median)")
        grid = np.linspace(1, max(n.max() * 1.25, 2), 200)
        ax.plot(grid, x[0] / n[0] * grid, "--", color="gray", label="ideal (linear)")
        s_frac = first.get("amdahl_serial_fraction")
        if s_frac is not None:
            f = n / (1 + s_frac * (n - 1))
            x1 = float(np.sum(x * f) / np.sum(f * f))
            ax.plot(grid, x1 * grid / (1 + s_frac * (grid - 1)), color="tab:orange",
                    label=f"Amdahl s={s_frac:.3g}")
        if first.get("usl_lambda") is not None:
            lam, sig, kap = first["usl_lambda"], first["usl_sigma"], first["usl_kappa"]
            ax.plot(grid, lam * grid / (1 + sig * (grid - 1) + kap * grid * (grid - 1)), color="tab:green",
                    label=f"USL σ={sig:.3g} κ={kap:.3g}")
        ax.set_xlabel(f"N ({dimension})")
        ax.set_ylabel(f"{metric} ({first['unit']})")
        ax.set_title(f"{workload} {_params_text(params)[:40]}\n{name}", fontsize=9)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"scaling_{_slug(workload + '_' + name + '_' + params)}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        s.images.append(path)
        for p in points:
            rows.append([workload, name, str(p["n"]), _fmt(p["throughput_median"]), f"{p['speedup']:.2f}",
                         f"{p['efficiency']:.2f}", _fmt(p.get("karp_flatt")), p.get("verdict") or ""])
        if first.get("fit_note"):
            s.paragraphs.append(f"{workload} {name}: {first['fit_note']}")
    s.tables.append((headers, rows))
    return s


def _cache_sizes(con, run_id: str) -> dict[str, int]:
    """Return {"L1d","L2","L3": bytes} of the first node's first usable CPU ({} when unknown)."""
    from cluster.topology import Topology

    for r in _rows(con, "SELECT topology FROM nodes WHERE run_id = ? ORDER BY is_head DESC", [run_id]):
        try:
            topo = Topology.from_dict(json.loads(r["topology"]))
        except (TypeError, ValueError, KeyError):
            continue
        return topo.cache_sizes_bytes(topo.usable_cpus)
    return {}


def _working_set_section(con, run_id: str, out: Path) -> Section | None:
    """Return the accesses/s-vs-working-set plot of memory.random_access sweeps; None when absent."""
    data = _rows(con, """
        SELECT trial_id, workers, placement, metric, median FROM trials
        WHERE run_id = ? AND workload = 'memory.random_access' AND status = 'ok'
          AND (metric LIKE 'ns_per_access@%' OR metric LIKE 'working_set_bytes@%')""", [run_id])
    if not data:
        return None
    plt = _pyplot()
    curves: dict[str, dict[str, dict[str, float]]] = {}
    for r in data:
        kind, _, label = r["metric"].partition("@")
        curves.setdefault(f"{r['workers']}w {r['placement']}", {}).setdefault(label, {})[kind] = r["median"]
    s = Section("Throughput vs working set (memory.random_access)")
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    rows = []
    for name, points in curves.items():
        pts = sorted((p["working_set_bytes"], 1e9 / p["ns_per_access"], label, p["ns_per_access"])
                     for label, p in points.items()
                     if p.get("working_set_bytes") and p.get("ns_per_access"))
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=name)
        rows += [[name, label, _fmt(ws) + "B", f"{ns:.3g}", _fmt(acc)] for ws, acc, label, ns in pts]
    for level, size in _cache_sizes(con, run_id).items():
        ax.axvline(size, color="gray", ls=":")
        ax.text(size, ax.get_ylim()[1] if rows else 1, f" {level}", va="top", fontsize=8, color="gray")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("working set (bytes)")
    ax.set_ylabel("accesses/s per worker (1e9 / ns per access)")
    ax.set_title("memory.random_access: throughput vs working set")
    ax.grid(alpha=0.3)
    if rows:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "working_set_memory_random_access.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    s.images.append(path)
    s.tables.append((["trials", "point", "working set", "ns/access", "accesses/s"], rows))
    return s


def _environment_section(con, run_id: str) -> Section:
    """Return the environment table: one column per node."""
    from cluster.topology import format_bytes

    nodes = _rows(con, "SELECT * FROM nodes WHERE run_id = ? ORDER BY is_head, hostname", [run_id])
    s = Section("Environment")
    if not nodes:
        s.paragraphs.append("No node facts stored for this run.")
        return s
    facts = (("hostname", "host"), ("cpu_model", "CPU model"), ("cpu_flags", "SIMD flags"),
             ("topology_summary", "topology"), ("governor", "governor"), ("boost", "turbo/boost"),
             ("smt_active", "SMT"), ("amd_x3d_mode", "amd_x3d_mode"), ("kernel", "kernel"),
             ("memory_total_bytes", "memory"), ("load_avg_1m", "load (1 min)"), ("ray_cpus", "Ray CPUs"),
             ("versions", "versions"))
    rows = []
    for key, label in facts:
        cells = []
        for n in nodes:
            v = n.get(key)
            if key == "memory_total_bytes" and v is not None:
                v = format_bytes(int(v))
            elif key == "cpu_flags" and v is not None:
                v = " ".join(v)
            elif key == "versions" and v:
                try:
                    v = ", ".join(f"{k} {x}" for k, x in json.loads(v).items() if x)
                except ValueError:
                    pass
            elif key == "load_avg_1m" and v is not None:
                v = f"{v:.2f}"
            cells.append(_fmt(v))
        rows.append([label, *cells])
    s.tables.append((["fact", *(n.get("hostname") or n["node_id"][:8] for n in nodes)], rows))
    from cluster.environment import environment_warnings

    for w in environment_warnings(nodes):
        s.paragraphs.append(f"Warning: {w}")
    return s


def _comparison_section(results: Path, base: str, new: str) -> Section:
    """Return the ``compare`` table of NEW against BASE."""
    from orchestrator.compare import _HEADERS, _text_rows, compare_runs

    result = compare_runs(results, base, new)
    s = Section(f"Comparison: {result.new_run} (NEW) vs {result.base_run} (BASE)")
    s.paragraphs.append("Ratio = NEW/BASE of the medians with a bootstrap 95% CI; p from the "
                        "Mann-Whitney U test; significant at p < 0.01 with a CI that excludes 1.")
    s.tables.append((list(_HEADERS), _text_rows(result)))
    for label, items in (("Only in BASE", result.only_base), ("Only in NEW", result.only_new)):
        s.paragraphs += [f"{label}: {i}" for i in items]
    return s


def render_markdown(title: str, sections: list[Section]) -> str:
    """Return the report as Markdown, linking the PNG files by name."""
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        for headers, rows in s.tables:
            lines.append("| " + " | ".join(headers) + " |")
            lines.append("|" + "---|" * len(headers))
            lines += ["| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in r) + " |" for r in rows]
            lines.append("")
        for img in s.images:
            lines += [f"![{img.stem}]({img.name})", ""]
    return "\n".join(lines)


def _inline_code(text: str) -> str:
    parts = html.escape(text).split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px}
th{background:#f0f0f0}img{max-width:100%;display:block;margin:1em 0}code{background:#f4f4f4;padding:1px 3px}"""


def render_html(title: str, sections: list[Section]) -> str:
    """Return the report as one HTML file with every PNG embedded as a base64 data URI."""
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{html.escape(title)}</title>",
           f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        out.append(f"<h2>{html.escape(s.title)}</h2>")
        out += [f"<p>{_inline_code(p)}</p>" for p in s.paragraphs]
        for headers, rows in s.tables:
            out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers)
                       + "</tr></thead><tbody>")
            out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows]
            out.append("</tbody></table>")
        for img in s.images:
            data = base64.b64encode(img.read_bytes()).decode()
            out.append(f"<img alt='{html.escape(img.stem)}' src='data:image/png;base64,{data}'>")
    out.append("</body></html>")
    return "\n".join(out)


def build_report(results: Path, run: str, out: Path | None = None, vs: str | None = None) -> ReportFiles:
    """Write report.md, report.html and the PNG plots of run ``run`` into ``out``.

    Args:
        results: the results dataset folder.
        run: run id, ``latest`` or ``latest~N``.
        out: output folder (default: ``<results>/reports/<run_id>``); created when missing.
        vs: a second run to compare against ``run`` (NEW vs BASE=run), or None.

    Raises:
        UserError: missing results folder, bad or unknown run ids, or an output folder that
            cannot be created.
    """
    from orchestrator.compare import resolve_run_id
    from orchestrator.query import connect

    if not Path(results).is_dir():
        raise UserError(f"Results folder {str(results)!r} does not exist; run `topobench run` first "
                        "or pass the folder with --results DIR.")
    con = connect(results)
    try:
        run_id = resolve_run_id(con, run)
        out = Path(out) if out is not None else Path(results) / "reports" / run_id
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--out {str(out)!r} cannot be created ({exc.strerror}); pass a writable "
                            "folder with --out DIR.") from None
        run_row = _rows(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])[0]
        trials = _rows(con, "SELECT * FROM trials WHERE run_id = ? ORDER BY workload, workers, placement, "
                            "params, metric", [run_id])
        sections = [_summary_section(run_row, trials), _distribution_section(con, run_id, out)]
        sections += [s for s in (_scaling_section(con, run_id, out), _working_set_section(con, run_id, out)) if s]
        sections.append(_environment_section(con, run_id))
    finally:
        con.close()
    if vs is not None:
        sections.append(_comparison_section(results, run_id, vs))
    title = f"topobench report — run {run_id}"
    md, page = out / "report.md", out / "report.html"
    md.write_text(render_markdown(title, sections))
    page.write_text(render_html(title, sections))
    return ReportFiles(md, page, tuple(img for s in sections for img in s.images))


def report_command(
    run: Annotated[str, typer.Argument(help="Run to report: a run id, 'latest' or 'latest~N'.")],
    vs: Annotated[str | None, typer.Option("--vs", help="Add a comparison of this run (NEW) against RUN (BASE).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: RESULTS/reports/RUN_ID).")] = None,
    results: Annotated[Path, typer.Option("--results", help="Results dataset folder.")] = Path("results"),
) -> None:
    """Write report.md and a self-contained report.html with plots of a run (and a comparison)."""
    files = build_report(results, run, out, vs)
    typer.echo(f"Wrote {files.markdown}, {files.html} and {len(files.images)} plot(s).")
