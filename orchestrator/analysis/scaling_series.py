"""A sweep's scaling analysis: per workload and dimension, X(N), speedup, efficiency and fits.

Throughput X(N) of one trial: per repetition r, all workers' ops over round r's wall time,
first start to last end (``concurrency.concurrent_throughput``). Every worker runs the same
iteration count and starts sample r at one shared instant, so each round is one
observation of what the workers achieved together, stragglers included. The
``repetitions`` observations give the median and its bootstrap CI (stats.summarize);
``trials.overlap`` says how well the samples lined up.

Dimensions: "workers" varies workers per node at a fixed node count (N = total workers);
"nodes" varies the node count at fixed workers per node (N = nodes). Each series holds one
workload, parameter set, placement, threads per worker and mode; a series with fewer than two
N is not a scaling series and is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from orchestrator.analysis import scaling
from orchestrator.analysis.concurrency import concurrent_throughput
from orchestrator.analysis.scaling import AmdahlFit, NotEnoughPoints, ScalingRow, USLFit

DIMENSIONS = ("workers", "nodes")


@dataclass(frozen=True, slots=True)
class SeriesAnalysis:
    """The scaling of one series over one dimension, with its fits (None when not fitted)."""

    workload: str
    params: str
    """The parameter set as canonical JSON."""
    dimension: str
    series: str
    """The fixed dimensions, e.g. "nodes=1 placement=compact threads_per_worker=1"."""
    mode: str
    metric: str
    unit: str
    rows: tuple[ScalingRow, ...]
    samples: tuple[int, ...]
    """Per row, the number of per-repetition throughputs behind its median."""
    amdahl: AmdahlFit | None
    usl: USLFit | None
    fit_note: str | None
    """Why a fit is missing ("not enough points: ..."); None when both fitted."""
    verdict: str
    hosts: tuple[int, ...] = ()
    """Per row, how many machines its nodes ran on."""


def trial_throughputs(samples: pa.Table, metric: str) -> dict[str, np.ndarray]:
    """Return per trial id the per-repetition concurrent throughputs (ops/s, see module doc).

    ``samples`` is long-format samples (SAMPLES_SCHEMA); warm-up samples and other metrics
    are ignored. A repetition not measured by every worker of its trial is dropped.
    """
    measured = samples.filter(pc.and_(pc.invert(samples["warmup"]), pc.equal(samples["metric"], metric)))
    out: dict[str, np.ndarray] = {}
    for tid in sorted(set(measured["trial_id"].to_pylist())):
        together = concurrent_throughput(measured.filter(pc.equal(measured["trial_id"], tid)))
        if together.per_repetition.size:
            out[tid] = together.per_repetition
    return out


def _fits(ns: Sequence[int], xs: Sequence[np.ndarray]) -> tuple[AmdahlFit | None, USLFit | None, str | None]:
    n_all = np.concatenate([np.full(len(x), n, dtype=float) for n, x in zip(ns, xs)])
    x_all = np.concatenate(xs)
    notes = []
    fits: list[Any] = []
    for name, fit in (("Amdahl", scaling.fit_amdahl), ("USL", scaling.fit_usl)):
        try:
            fits.append(fit(n_all, x_all))
        except NotEnoughPoints as exc:
            fits.append(None)
            notes.append(str(exc))
        except (RuntimeError, ValueError) as exc:  # curve_fit did not converge
            fits.append(None)
            notes.append(f"{name} fit failed: {exc}")
    note = "; ".join(notes) or None
    if note and all(f is None for f in fits) and "fit failed" not in note:
        note = f"not enough points: {note}"
    elif note and "fit failed" not in note:
        note = f"not enough points for the USL: {note}"
    return fits[0], fits[1], note


def analyze(trials: Sequence[Mapping[str, Any]], throughputs: Mapping[str, np.ndarray],
            metrics: Mapping[str, tuple[str, str]]) -> tuple[SeriesAnalysis, ...]:
    """Return the scaling analysis of a sweep's ok trials, per workload, dimension and series.

    Args:
        trials: ``trials`` rows (any metric; rows with status other than ok are ignored).
        throughputs: per trial id, per-repetition aggregate throughputs (``trial_throughputs``).
        metrics: per workload, its throughput metric (name, unit).
    """
    points: dict[str, dict[str, Any]] = {}
    for row in trials:
        if row["status"] == "ok" and row["trial_id"] in throughputs and row["workload"] in metrics:
            points[row["trial_id"]] = row
    out = []
    for dimension in DIMENSIONS:
        groups: dict[tuple, dict[int, np.ndarray]] = {}
        hosts: dict[tuple, dict[int, int]] = {}
        for tid, row in points.items():
            per_node = row["workers"] // row["nodes"]
            fixed = (("nodes", row["nodes"]) if dimension == "workers" else ("workers_per_node", per_node))
            key = (row["workload"], row["params"], row["mode"], fixed,
                   ("placement", row["placement"]), ("threads_per_worker", row["threads_per_worker"]))
            n = row["workers"] if dimension == "workers" else row["nodes"]
            groups.setdefault(key, {})[n] = throughputs[tid]
            hosts.setdefault(key, {})[n] = row.get("hosts") or 1
        for key in sorted(groups, key=str):
            by_n = groups[key]
            if len(by_n) < 2:
                continue
            workload, params, mode, *fixed = key
            ns = sorted(by_n)
            xs = [by_n[n] for n in ns]
            rows = scaling.scaling_table(ns, xs, mode=mode)
            amdahl, usl, note = _fits(ns, xs)
            fell = scaling.retrograde(rows)
            if amdahl is not None and fell is not None:  # Amdahl only rises: on a drop it fits s = 1, a plateau
                amdahl = None
                why = f"no Amdahl fit: throughput falls after N={fell.n}, and Amdahl's law only rises toward a ceiling"
                note = f"{note}; {why}" if note else why
            metric, unit = metrics[workload]
            verdict = scaling.verdict(rows, usl, amdahl, dimension, mode=mode)
            machines = tuple(hosts[key][n] for n in ns)
            if dimension == "nodes" and max(machines) == 1:
                verdict += "; nodes share one host: this measures the host, not horizontal scaling"
            out.append(SeriesAnalysis(
                workload, params, dimension, " ".join(f"{k}={v}" for k, v in fixed), mode, metric, unit,
                rows, tuple(len(x) for x in xs), amdahl, usl, note, verdict, machines))
    return tuple(out)


def scaling_rows(run_id: str, analyses: Sequence[SeriesAnalysis]) -> list[dict[str, Any]]:
    """Return the ``scaling`` table rows (SCALING_SCHEMA) of ``analyses``."""
    rows = []
    for a in analyses:
        am, usl = a.amdahl, a.usl
        fit = {
            "amdahl_serial_fraction": am and am.serial_fraction,
            "amdahl_serial_fraction_ci_low": am and am.serial_fraction_ci[0],
            "amdahl_serial_fraction_ci_high": am and am.serial_fraction_ci[1],
            "amdahl_rmse": am and am.rmse, "amdahl_x1": am and am.x1,
            "amdahl_x1_ci_low": am and am.x1_ci and am.x1_ci[0], "amdahl_x1_ci_high": am and am.x1_ci and am.x1_ci[1],
            "usl_lambda_ci_low": usl and usl.lambda_ci[0], "usl_lambda_ci_high": usl and usl.lambda_ci[1],
            "usl_peak_n_ci_low": usl and usl.peak_n_ci and usl.peak_n_ci[0],
            "usl_peak_n_ci_high": usl and usl.peak_n_ci and usl.peak_n_ci[1],
            "fit_scale": (am or usl) and (am or usl).scale,
            "usl_lambda": usl and usl.lambda_, "usl_sigma": usl and usl.sigma,
            "usl_sigma_ci_low": usl and usl.sigma_ci[0], "usl_sigma_ci_high": usl and usl.sigma_ci[1],
            "usl_kappa": usl and usl.kappa,
            "usl_kappa_ci_low": usl and usl.kappa_ci[0], "usl_kappa_ci_high": usl and usl.kappa_ci[1],
            "usl_peak_n": usl and usl.peak_n, "usl_rmse": usl and usl.rmse,
        }
        for r, count, machines in zip(a.rows, a.samples, a.hosts or (None,) * len(a.rows)):
            rows.append({
                "run_id": run_id, "workload": a.workload, "params": a.params, "dimension": a.dimension,
                "series": a.series, "mode": a.mode, "metric": a.metric, "unit": a.unit, "n": r.n,
                "samples": count, "throughput_median": r.throughput_median,
                "throughput_ci_low": r.throughput_ci_low, "throughput_ci_high": r.throughput_ci_high,
                "speedup": r.speedup, "efficiency": r.efficiency, "karp_flatt": r.karp_flatt,
                "speedup_ci_low": r.speedup_ci_low, "speedup_ci_high": r.speedup_ci_high,
                "efficiency_ci_low": r.efficiency_ci_low, "efficiency_ci_high": r.efficiency_ci_high,
                **fit, "fit_note": a.fit_note, "verdict": a.verdict, "hosts": machines,
            })
    return rows


def analyze_run(rows: Sequence[Mapping[str, Any]], samples: pa.Table,
                workloads: Sequence[str]) -> tuple[SeriesAnalysis, ...]:
    """Return the scaling analysis of a stored sweep from its trials rows and samples (``store.queries``)."""
    from workloads.registry import get_workload

    if samples.num_rows == 0:
        return ()
    metrics = {w: (get_workload(w).throughput.name, get_workload(w).throughput.unit) for w in workloads}
    throughputs: dict[str, np.ndarray] = {}
    for name, (metric, _) in metrics.items():
        wanted = {r["trial_id"] for r in rows if r["workload"] == name}
        subset = samples.filter(pc.is_in(samples["trial_id"], pa.array(sorted(wanted), pa.string())))
        throughputs.update(trial_throughputs(subset, metric))
    return analyze(rows, throughputs, metrics)
