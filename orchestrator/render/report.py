"""``topobench report RUN``: assemble report.md and a self-contained report.html with figures.

Sections: run summary, per-workload sample distributions per worker, scaling curves with
the stored Amdahl/USL fits (when the run has a ``scaling`` table), throughput and load-to-use
latency against working set (``memory.random_access`` and ``memory.latency`` sweeps, caches
marked), the core-to-core latency matrix (``cpu.c2c``), latency against percentile from the
merged histograms, the capacity search (latency against offered load with the SLO and the knee,
capacity against N), the environment of every host, and, with ``--vs NEW``, the comparison
against another run. This module chooses what to show; the
figures come from ``render.plots`` and the files from ``render.markdown``/``render.html``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.analysis.c2c import c2c_domain_medians
from orchestrator.analysis.latency import percentile_spectrum
from orchestrator.render import plots
from orchestrator.render.comparison import HEADERS, params_cell, text_rows, weakened_text
from orchestrator.render.env_table import FACTS, fact_cell
from orchestrator.render.numbers import percent, si
from orchestrator.render.section import Section
from orchestrator.store import queries
from orchestrator.store.reader import Dataset
from workloads.errors import UserError
from workloads.units import plural

MAX_BOX_GROUPS = 48
"""Most boxes in one distribution plot; more groups are cut with a note."""


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """Where a report was written."""

    markdown: Path
    html: Path
    images: tuple[Path, ...]
    skipped: tuple[str, ...] = ()
    """Dataset files left out because they could not be read as their table."""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return si(value) if math.isfinite(value) else "-"
    return str(value)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")[:80] or "plot"


def summary_section(run: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> Section:
    """Return the run's header and its trials table (one line per trial and metric)."""
    s = Section("Run")
    total = run.get("trials_total") or 0
    missed = [t for t in trials if t.get("target") and " fail" in f" {t['target']}"]
    targets = f"; **{len(missed)} metric(s) missed a target**" if missed else ""
    s.paragraphs.append(f"Run `{run['run_id']}`, status **{run.get('status')}**{targets}, started "
                        f"{run.get('started_at')}, {plural(total, 'trial')} ({run.get('trials_failed') or 0} failed).")
    if run.get("status") not in (None, "complete"):
        s.paragraphs.append(f"**This run is {run['status']}**: the figures below are of the trials it stored "
                            f"({len({t['trial_id'] for t in trials})} of {run.get('trials_total') or '?'}).")
    if run.get("command"):
        s.paragraphs.append(f"Command: `{run['command']}`" + "".join(
            f"; resumed by `{c}`" for c in run.get("resumed_by") or ()))
    headers = ["workload", "params", "workers", "placement", "metric", "n", "median", "95% CI",
               "CV", "aggregate", "unit", "flags", "target", "status"]
    rows = []
    for t in trials:
        ci = "-" if t.get("ci_low") is None else f"{_fmt(t['ci_low'])}– {_fmt(t['ci_high'])}"
        rows.append([t["workload"], params_cell(t.get("params") or "{}"), _fmt(t.get("workers")),
                     t.get("placement") or "", t["metric"], _fmt(t.get("n")), _fmt(t.get("median")), ci,
                     percent(t.get("cv")), _fmt(t.get("aggregate_throughput")), t.get("unit") or "",
                     ", ".join(t.get("flags") or ()), t.get("target") or "",
                     t.get("status") if t.get("status") == "ok" else f"failed: {t.get('error')}"])
    s.tables.append((headers, rows))
    return s


def _varying(labels: Sequence[tuple[str, ...]]) -> list[str]:
    """Return each label with only the parts that differ between labels (joined by newlines)."""
    keep = [i for i in range(len(labels[0])) if len({lab[i] for lab in labels}) > 1] if labels else []
    return ["\n".join(lab[i] for i in keep) or "all" for lab in labels]


def distribution_section(dataset: Dataset, run_id: str, out: Path) -> Section:
    """Return box-and-strip plots of each workload's primary metric, one box per worker of a trial."""
    s = Section("Distributions")
    s.paragraphs.append("Each box is one worker's measured samples (warm-up excluded) of the workload's "
                        "primary metric; dots are the samples, whiskers 1.5 IQR.")
    data = queries.measured_samples(dataset, run_id)
    by_workload: dict[str, dict[tuple[str, ...], list[float]]] = {}
    units: dict[str, tuple[str, str]] = {}
    for r in data:
        label = (f"{r['workers']}w", r["placement"], params_cell(r["params"])[:30], r["hostname"],
                 f"worker {r['worker_rank']}")
        by_workload.setdefault(r["workload"], {}).setdefault(label, []).append(r["value"])
        units[r["workload"]] = (r["metric"], r["unit"])
    if not by_workload:
        s.paragraphs.append("No measured samples in this run.")
    for workload, groups in by_workload.items():
        keys = list(groups)[:MAX_BOX_GROUPS]
        metric, unit = units[workload]
        named = dict(zip(_varying(keys), (groups[k] for k in keys)))
        fig = plots.distribution_figure(f"{workload}: {metric} per worker", metric, unit, named)
        s.images.append(plots.save(fig, out / f"dist_{_slug(workload)}.png"))
        if len(groups) > MAX_BOX_GROUPS:
            s.paragraphs.append(f"{workload}: only the first {MAX_BOX_GROUPS} of {len(groups)} workers are shown.")
    return s


def scaling_section(dataset: Dataset, run_id: str, out: Path) -> Section | None:
    """Return scaling curves with the stored fits and the ideal line; None without a scaling table."""
    data = queries.scaling(dataset, run_id)
    if not data:
        return None
    s = Section("Scaling")
    series: dict[tuple, list[dict[str, Any]]] = {}
    for r in data:
        series.setdefault((r["workload"], r["params"], r["dimension"], r["series"], r["metric"]), []).append(r)
    headers = ["workload", "series", "N", "throughput", "speedup", "efficiency", "Karp-Flatt", "verdict"]
    rows = []
    for (workload, params, dimension, name, metric), points in series.items():
        first = points[0]
        usl = ((first["usl_lambda"], first["usl_sigma"], first["usl_kappa"])
               if first.get("usl_lambda") is not None else None)
        amdahl = ((first["amdahl_x1"], first["amdahl_serial_fraction"])
                  if first.get("amdahl_x1") is not None else None)
        title = f"{workload} {params_cell(params)[:40]}\n{name}"
        fig = plots.scaling_figure(title, dimension, metric, first["unit"], points, usl, amdahl)
        s.images.append(plots.save(fig, out / f"scaling_{_slug(workload + '_' + name + '_' + params)}.png"))
        for p in points:
            rows.append([workload, name, str(p["n"]), _fmt(p["throughput_median"]), f"{p['speedup']:.2f}",
                         f"{p['efficiency']:.2f}", _fmt(p.get("karp_flatt")), p.get("verdict") or ""])
        if first.get("fit_note"):
            s.paragraphs.append(f"{workload} {name}: {first['fit_note']}")
    s.tables.append((headers, rows))
    return s


def _cache_sizes(dataset: Dataset, run_id: str) -> dict[str, int]:
    """Return {"L1d","L2","L3": bytes} of the first node's first usable CPU ({} when unknown)."""
    from cluster.topology import Topology

    for text in queries.topologies(dataset, run_id):
        try:
            topo = Topology.from_dict(json.loads(text))
        except (TypeError, ValueError, KeyError):
            continue
        return topo.cache_sizes_bytes(topo.usable_cpus)
    return {}


def sweep_section(dataset: Dataset, run_id: str, out: Path, workload: str, value: str, ylabel: str, unit: str,
                  convert: Any = None) -> Section | None:
    """Return a metric of a working-set sweep (``value@point`` beside ``working_set_bytes@point``)
    against working-set size, with the worker's caches marked; None when the run has none.

    ``convert`` maps the stored value to the plotted one (1e9 / ns per access = accesses/s).
    """
    data = queries.point_medians(dataset, run_id, workload, (value, "working_set_bytes"))
    if not data:
        return None
    points: dict[str, dict[str, dict[str, float]]] = {}
    for r in data:
        kind, _, label = r["metric"].partition("@")
        points.setdefault(f"{r['workers']}w {r['placement']}", {}).setdefault(label, {})[kind] = r["median"]
    curves: dict[str, list[tuple[float, float]]] = {}
    rows = []
    for name, by_label in points.items():
        for label, p in by_label.items():
            if p.get("working_set_bytes") and p.get(value):
                shown = convert(p[value]) if convert else p[value]
                curves.setdefault(name, []).append((p["working_set_bytes"], shown))
                rows.append([name, label, _fmt(p["working_set_bytes"]) + "B", f"{p[value]:.3g}", _fmt(shown)])
    if not curves:
        return None
    s = Section(f"{ylabel} vs working set ({workload})")
    fig = plots.working_set_figure(f"{workload}: {ylabel} vs working set", ylabel, unit, curves,
                                   _cache_sizes(dataset, run_id))
    s.images.append(plots.save(fig, out / f"working_set_{_slug(workload)}.png"))
    s.tables.append((["trials", "point", "working set", value, ylabel], rows))
    return s


def _c2c_outlines(dataset: Dataset, run_id: str, cpus: Sequence[int]) -> list[tuple[str, tuple[int, ...]]]:
    """Return (label, CPUs) of the L3 domains and packages among ``cpus`` (the first node's topology)."""
    from cluster.topology import Topology

    stored = queries.topologies(dataset, run_id)
    if not stored:
        return []
    topo = Topology.from_dict(json.loads(stored[0]))
    wanted = set(cpus)
    out = [(f"L3 #{d.index}", tuple(sorted(wanted & set(d.cpus)))) for d in topo.l3_domains]
    packages = {p: tuple(sorted(wanted & {c for core in topo.cores if core.package == p for c in core.cpus}))
                for p in topo.packages}
    if len(packages) > 1:
        out += [(f"package {p}", cs) for p, cs in packages.items()]
    return [(label, cs) for label, cs in out if cs]


def c2c_summary(matrix: Mapping[tuple[int, int], float], domains: Sequence[tuple[str, tuple[int, ...]]]) -> str:
    """Return the medians of same-L3 and cross-L3 pairs' one-way latency (ns) as one sentence."""
    same, cross = c2c_domain_medians(matrix, domains)
    parts = [f"same L3: median {same[0]:.0f} ns over {same[1]} pairs" if same else "no same-L3 pair",
             f"across L3 domains: median {cross[0]:.0f} ns over {cross[1]} pairs" if cross
             else "no cross-L3 pair (one L3 domain)"]
    return "One-way cache-line latency, " + "; ".join(parts) + "."


def c2c_section(dataset: Dataset, run_id: str, out: Path) -> Section | None:
    """Return the core-to-core latency matrix of each cpu.c2c trial as a heatmap; None without one."""
    from workloads.cpu import parse_pair_label

    data = queries.point_medians(dataset, run_id, "cpu.c2c", ("one_way_ns",))
    if not data:
        return None
    s = Section("Core-to-core latency (cpu.c2c)")
    by_trial: dict[str, dict[tuple[int, int], float]] = {}
    for r in data:
        a, b = parse_pair_label(r["metric"].partition("@")[2])
        by_trial.setdefault(r["trial_id"], {})[(a, b)] = r["median"]
    for trial_id, matrix in by_trial.items():
        cpus = sorted({c for pair in matrix for c in pair})
        outlines = _c2c_outlines(dataset, run_id, cpus)
        fig = plots.c2c_heatmap(f"cpu.c2c one-way latency, trial {trial_id}", cpus, matrix, outlines)
        s.images.append(plots.save(fig, out / f"c2c_{_slug(trial_id)}.png"))
        s.paragraphs.append(f"Trial `{trial_id}`: {c2c_summary(matrix, outlines)}")
    return s


def latency_section(dataset: Dataset, run_id: str, out: Path) -> Section | None:
    """Return each workload's latency against percentile, one curve per trial; None without latencies."""
    data = queries.latency_histograms(dataset, run_id, ("latency", "latency_corrected", "gc_pause"))
    if not data:
        return None
    s = Section("Latency distributions")
    s.paragraphs.append("Latency of every request of each trial (all workers and rounds merged in one "
                        "HdrHistogram) against its percentile; the x axis stretches the tail (1/(1 − q)).")
    by_workload: dict[tuple[str, str], dict[str, tuple]] = {}
    for r in data:
        label = f"{r['metric']} {r['workers']}w {params_cell(r['params'])[:30]} ({r['requests']:,} requests)"
        by_workload.setdefault((r["workload"], r["unit"]), {})[label] = percentile_spectrum(r["histogram"], r["unit"])
    for (workload, unit), curves in by_workload.items():
        fig = plots.latency_figure(f"{workload}: latency by percentile", unit, curves)
        s.images.append(plots.save(fig, out / f"latency_{_slug(workload)}.png"))
    return s


def capacity_section(dataset: Dataset, run_id: str, out: Path) -> Section | None:
    """Return the capacity search: the table, latency against offered load per point, capacity against N."""
    from orchestrator.analysis.capacity import fit_capacity, parse_slos
    from orchestrator.analysis.capacity_advice import scale_steps

    rows = queries.capacity(dataset, run_id)
    if not rows:
        return None
    s = Section("Capacity at the SLO")
    slo = parse_slos(rows[0]["slo"])[0]
    s.paragraphs.append(
        f"Each step offered a fixed rate open loop; it met {rows[0]['slo']} when the {slo.percentile} of every request "
        "(upper 95% bound over rounds) was within the SLO, latency did not grow over the step (no backlog) and the "
        "generator kept its schedule. The knee is the highest rate that met it; the bracket reaches the lowest "
        "that did not.")
    rate_unit = queries.throughput_unit(dataset, run_id) or "/s"
    table = []
    for r in rows:
        table.append([plural(r["n"], r["dimension"][:-1]), _fmt(r["capacity_per_s"]),
                      f"{_fmt(r['bracket_low_per_s'])} – {_fmt(r['bracket_high_per_s'])}",
                      _fmt(r["latency_at_capacity_ms"]),
                      r["status"] + (" (not monotone)" if r.get("non_monotone") else ""), r["limited_by"] or ""])
        steps = queries.capacity_steps(dataset, run_id, r["trial_ids"], f"latency_{slo.percentile}_ms")
        below = r.get("non_monotone_per_s") or ()  # failing steps under the capacity
        for step in steps:
            rate = step["offered_per_s"]
            step["passed"] = (bool(r["capacity_per_s"]) and rate <= r["capacity_per_s"] * (1 + 1e-9)
                              and not any(math.isclose(rate, b, rel_tol=1e-9) for b in below))
        steps = [step for step in steps if step["value_ms"] is not None]
        if steps:
            fig = plots.hockey_stick_figure(f"{r['workload']} at {plural(r['n'], r['dimension'][:-1])}: "
                                            f"{slo.percentile} against "
                                            "offered load", slo.percentile, slo.threshold_ns / 1e6, steps,
                                            r["capacity_per_s"], rate_unit)
            s.images.append(plots.save(fig, out / f"capacity_{_slug(r['workload'])}_{r['n']}.png"))
    s.tables.append((["N", "capacity", "bracket", f"{slo.percentile} at capacity (ms)", "status", "limited by"],
                     table))
    s.paragraphs += [f"{plural(r['n'], r['dimension'][:-1])}: {r['note']}" for r in rows if r.get("note")]
    met = [r for r in rows if r["capacity_per_s"]]
    if len(met) >= 2:
        ns, caps = [r["n"] for r in met], [r["capacity_per_s"] for r in met]
        steps = scale_steps(ns, caps, [r["bracket_high_per_s"] for r in met])
        fit = fit_capacity(ns, caps)
        rising = all(step.change == "adds" for step in steps)
        usl, amdahl = fit.usl, fit.amdahl if rising else None  # Amdahl only rises: no curve over falling capacity
        noun = rows[0]["dimension"][:-1]
        s.paragraphs += [f"{plural(st.upper_n, noun)} add no capacity over {plural(st.lower_n, noun)} at "
                         f"{rows[0]['slo']} ({_fmt(st.upper_per_s)} against {_fmt(st.lower_per_s)} {rate_unit}, "
                         f"{'below' if st.change == 'less' else 'within'} the search's brackets)."
                         for st in steps if st.change != "adds"]
        points = [{"n": r["n"], "throughput_median": r["capacity_per_s"], "throughput_ci_low": r["bracket_low_per_s"],
                   "throughput_ci_high": r["bracket_high_per_s"] or r["capacity_per_s"]} for r in met]
        fig = plots.scaling_figure(f"{rows[0]['workload']}: capacity at {rows[0]['slo']}", rows[0]["dimension"],
                                   f"capacity at {rows[0]['slo']}", rate_unit, points, usl, amdahl,
                                   interval="the search's bracket")
        s.images.append(plots.save(fig, out / f"capacity_{_slug(rows[0]['workload'])}_over_n.png"))
    return s


def environment_section(dataset: Dataset, run_id: str) -> Section:
    """Return the environment table: one column per distinct host (its nodes listed together)."""
    from cluster.environment import environment_warnings

    nodes = queries.nodes(dataset, run_id)
    s = Section("Environment")
    if not nodes:
        s.paragraphs.append("No node facts stored for this run.")
        return s
    hosts: dict[str, list[dict[str, Any]]] = {}
    for n in nodes:
        hosts.setdefault(n.get("hostname") or n["node_id"], []).append(n)
    columns = []
    for host, members in hosts.items():
        env = {**members[0], "versions": json.loads(members[0].get("versions") or "null")}
        columns.append((f"{host} ({plural(len(members), 'node')})" if len(members) > 1 else host, env))
    rows = [[label, *(fact_cell(env, key) for _, env in columns)] for key, label in FACTS if key != "hostname"]
    s.tables.append((["fact", *(name for name, _ in columns)], rows))
    s.paragraphs += [f"Warning: {w}" for w in environment_warnings(nodes)]
    return s


def comparison_section(dataset: Dataset, base: str, new: str) -> Section:
    """Return the ``compare`` table of NEW against BASE."""
    from orchestrator.analysis.compare import compare_runs

    result = compare_runs(queries.run_rounds(dataset, base), queries.run_rounds(dataset, new))
    s = Section(f"Comparison: {result.new_run} (NEW) vs {result.base_run} (BASE)")
    s.paragraphs.append("Units are rounds (each round's mean over its workers). Ratio = NEW/BASE of the "
                        "medians with a bootstrap 95% CI; p from the Mann-Whitney U test, adjusted by Holm "
                        "across all metrics; significant when the adjusted p < 0.01 and the CI excludes 1.")
    s.tables.append((list(HEADERS), text_rows(result)))
    s.paragraphs += [line] if (line := weakened_text(result)) else []
    s.paragraphs += [f"Note: {n}" for n in result.notes]
    for label, items in (("Only in BASE", result.only_base), ("Only in NEW", result.only_new)):
        s.paragraphs += [f"{label}: {i}" for i in items]
    return s


def build_report(results: Path, run: str, out: Path | None = None, vs: str | None = None) -> ReportFiles:
    """Write report.md, report.html and the PNG figures of run ``run`` into ``out``.

    Args:
        results: the results dataset folder.
        run: run id, ``latest`` or ``latest~N``.
        out: output folder (default: ``<results>/reports/<run_id>``); created when missing.
        vs: a run to compare ``run`` against: ``run`` is NEW, ``vs`` is BASE (as ``compare vs run``), or None.

    Raises:
        UserError: missing results folder, bad or unknown run ids, or an output folder that
            cannot be created or written.
    """
    from orchestrator.render.html import report_html
    from orchestrator.render.markdown import report_markdown

    dataset = Dataset(results)
    run_id = dataset.resolve(run)
    out = Path(out) if out is not None else Path(results) / "reports" / run_id
    try:
        # First, so that two runs with nothing in common are refused before any file is written.
        comparison = comparison_section(dataset, dataset.resolve(vs), run_id) if vs is not None else None
        out.mkdir(parents=True, exist_ok=True)
        sections = [summary_section(dataset.run(run_id) or {"run_id": run_id}, dataset.trials(run_id)),
                    distribution_section(dataset, run_id, out)]
        sweeps = (sweep_section(dataset, run_id, out, "memory.random_access", "ns_per_access", "accesses per worker",
                                "accesses/s", lambda ns: 1e9 / ns),
                  sweep_section(dataset, run_id, out, "memory.latency", "ns_per_load", "load-to-use latency", "ns"))
        sections += [s for s in (scaling_section(dataset, run_id, out), *sweeps, c2c_section(dataset, run_id, out),
                                 latency_section(dataset, run_id, out), capacity_section(dataset, run_id, out))
                     if s is not None]
        sections.append(environment_section(dataset, run_id))
        if comparison is not None:
            sections.append(comparison)
        title = f"topobench report — run {run_id}"
        md, page = out / "report.md", out / "report.html"
        md.write_text(report_markdown(title, sections))
        page.write_text(report_html(title, sections))
    except OSError as exc:
        raise UserError(f"--out {str(out)!r} cannot be written ({exc.strerror or exc}); pass a writable "
                        "folder with --out DIR.") from None
    finally:
        dataset.close()
    return ReportFiles(md, page, tuple(img for s in sections for img in s.images), tuple(dataset.skipped))
