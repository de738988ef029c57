"""The report's figures (matplotlib, object API: no global pyplot state); each returns a ``Figure``.

Axes carry the metric's unit with SI-scaled numbers ("150 M element ops/s"), tick labels are
laid out so they never overlap (``overlapping_tick_labels`` checks a drawn figure), and no
line is drawn beyond the data it stands for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter

from orchestrator.render.numbers import quantity, si

DPI = 90


def _figure(width: float, height: float) -> Figure:
    """Return a figure drawn by Agg (no pyplot, no display), laid out so nothing is clipped."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _unit_axis(axis, unit: str) -> None:
    axis.set_major_formatter(FuncFormatter(lambda v, _: quantity(v, unit) if v else "0"))


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` and return the path."""
    fig.savefig(path, dpi=DPI)
    return path


def distribution_figure(title: str, metric: str, unit: str, groups: Mapping[str, np.ndarray]) -> Figure:
    """Return box-and-strip plots, one box per group (a worker of a trial), of one metric's samples."""
    labels = list(groups)
    values = [np.asarray(groups[k], dtype=float) for k in labels]
    rotate = len(labels) > 4 or max((len(line) for k in labels for line in k.split("\n")), default=0) > 14
    fig = _figure(max(6.0, 0.45 * len(labels) + 2.5), 4.6 if rotate else 4.0)
    ax = fig.add_subplot()
    ax.boxplot(values, showfliers=False)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=90 if rotate else 0, fontsize=7)
    rng = np.random.default_rng(0)
    for i, v in enumerate(values, start=1):
        ax.plot(i + rng.uniform(-0.12, 0.12, v.size), v, "o", ms=3, alpha=0.6, color="tab:blue")
    _unit_axis(ax.yaxis, unit)
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


def scaling_figure(title: str, dimension: str, metric: str, unit: str, points: Sequence[Mapping],
                   usl: tuple[float, float, float] | None, amdahl: tuple[float, float] | None,
                   interval: str = "median, 95% CI") -> Figure:
    """Return throughput against N with its CIs, the ideal line and the fitted Amdahl and USL curves.

    ``points`` hold n, throughput_median, throughput_ci_low/high; ``usl`` is (λ, σ, κ) and
    ``amdahl`` (X1, s), each None when not fitted; ``interval`` names what the error bars are.
    Lines span the measured N only.
    """
    n = np.array([p["n"] for p in points], dtype=float)
    x = np.array([p["throughput_median"] for p in points], dtype=float)
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    lo = [p.get("throughput_ci_low") for p in points]
    hi = [p.get("throughput_ci_high") for p in points]
    if all(v is not None for v in lo + hi):
        ax.errorbar(n, x, yerr=[x - np.array(lo, float), np.array(hi, float) - x], fmt="o", color="black",
                    capsize=3, label=f"measured ({interval})")
    else:
        ax.plot(n, x, "o", color="black", label="measured (median)")
    grid = np.linspace(n.min(), n.max(), 200)
    ax.plot(grid, x[0] / n[0] * grid, "--", color="gray", label="ideal (linear from the smallest N)")
    if amdahl is not None:
        x1, s = amdahl
        ax.plot(grid, x1 * grid / (1 + s * (grid - 1)), color="tab:orange", label=f"Amdahl s={s:.3g}")
    if usl is not None:
        lam, sig, kap = usl
        ax.plot(grid, lam * grid / (1 + sig * (grid - 1) + kap * grid * (grid - 1)), color="tab:green",
                label=f"USL σ={sig:.3g} κ={kap:.3g}")
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(n.tolist()))))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    _unit_axis(ax.yaxis, unit)
    ax.set_xlabel(f"N ({dimension})")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=9)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def hockey_stick_figure(title: str, percentile: str, threshold_ms: float, steps: Sequence[Mapping],
                        capacity_per_s: float | None, rate_unit: str) -> Figure:
    """Return a latency percentile against offered load: every step, the SLO line and the knee.

    ``steps`` hold offered_per_s, value_ms, ci_low_ms, ci_high_ms (bounds may be None) and
    passed; the knee is the capacity (the highest passing rate), drawn when there is one.
    """
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    for passed, colour, label in ((True, "tab:green", "met the SLO"), (False, "tab:red", "missed it")):
        group = sorted((s for s in steps if s["passed"] == passed), key=lambda s: s["offered_per_s"])
        if not group:
            continue
        x = np.array([s["offered_per_s"] for s in group], float)
        y = np.array([s["value_ms"] for s in group], float)
        lo = np.array([s["ci_low_ms"] if s["ci_low_ms"] is not None else s["value_ms"] for s in group], float)
        hi = np.array([s["ci_high_ms"] if s["ci_high_ms"] is not None else s["value_ms"] for s in group], float)
        ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="o", color=colour, capsize=3,
                    label=f"{percentile} (every request; 95% CI over rounds), {label}")
    ordered = sorted(steps, key=lambda s: s["offered_per_s"])
    ax.plot([s["offered_per_s"] for s in ordered], [s["value_ms"] for s in ordered], color="gray", lw=0.8)
    ax.axhline(threshold_ms, color="black", ls="--", label=f"SLO {percentile} {quantity(threshold_ms, 'ms')}")
    if capacity_per_s:
        ax.axvline(capacity_per_s, color="tab:blue", ls=":", label=f"capacity {quantity(capacity_per_s, rate_unit)}")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: si(v) if v else "0"))  # the unit is in the label
    _unit_axis(ax.yaxis, "ms")
    ax.set_xlabel(f"offered load, {rate_unit} (open loop, all workers)")
    ax.set_ylabel(f"latency {percentile}")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def working_set_figure(title: str, ylabel: str, unit: str, curves: Mapping[str, Sequence[tuple[float, float]]],
                       caches: Mapping[str, int]) -> Figure:
    """Return a figure against working-set size (log x): one line per curve, cache sizes marked.

    ``curves`` map a label to (working-set bytes, value) points; ``caches`` the worker's
    cache sizes by level ("L1d", "L2", "L3").
    """
    from workloads.units import format_bytes

    fig = _figure(6.8, 4.2)
    ax = fig.add_subplot()
    for name, pts in curves.items():
        pts = sorted(pts)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=name)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_bytes(int(v)) if v >= 1 else ""))
    for level, size in caches.items():
        ax.axvline(size, color="gray", ls=":")
        ax.annotate(f" {level}", (size, 1), xycoords=("data", "axes fraction"), va="top", fontsize=8, color="gray")
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    _unit_axis(ax.yaxis, unit)
    ax.set_xlabel("working set")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    return fig


def latency_figure(title: str, unit: str, curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """Return latency against percentile, HdrHistogram's plot: x is 1/(1 − q) on a log scale.

    ``curves`` map a label to (quantiles in [0, 1), latency values in ``unit``); the x ticks
    read 0%, 90%, 99%, 99.9%, … up to what the data reaches.
    """
    fig = _figure(6.8, 4.2)
    ax = fig.add_subplot()
    reach = 1.0
    for name, (q, v) in curves.items():
        x = 1.0 / (1.0 - np.asarray(q, dtype=float))
        reach = max(reach, float(x.max()))
        ax.plot(x, v, "-", label=name)
    ax.set_xscale("log")
    nines = [10.0**k for k in range(int(np.ceil(np.log10(reach))) + 1)]
    ax.xaxis.set_major_locator(FixedLocator(nines))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * (1 - 1 / v):.{max(0, round(np.log10(v)) - 2)}f}%"))
    ax.xaxis.set_minor_locator(FixedLocator([]))
    _unit_axis(ax.yaxis, unit)
    ax.set_xlabel("percentile")
    ax.set_ylabel(f"latency ({unit})")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    return fig


def c2c_heatmap(title: str, cpus: Sequence[int], matrix: Mapping[tuple[int, int], float],
                outlines: Sequence[tuple[str, Sequence[int]]]) -> Figure:
    """Return the core-to-core latency matrix (ns, symmetric) with L3 domains and packages outlined."""
    from matplotlib.patches import Rectangle

    index = {c: i for i, c in enumerate(cpus)}
    grid = np.full((len(cpus), len(cpus)), np.nan)
    for (a, b), v in matrix.items():
        grid[index[a], index[b]] = grid[index[b], index[a]] = v
    side = max(4.5, 0.32 * len(cpus) + 2.5)
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="viridis", origin="upper")
    fig.colorbar(image, ax=ax, label="one-way latency (ns)", shrink=0.8)
    step = max(1, len(cpus) // 16)
    ticks = list(range(0, len(cpus), step))
    ax.set_xticks(ticks, [str(cpus[i]) for i in ticks], fontsize=7)
    ax.set_yticks(ticks, [str(cpus[i]) for i in ticks], fontsize=7)
    for label, members in outlines:
        rows = sorted(index[c] for c in members if c in index)
        if rows and rows == list(range(rows[0], rows[-1] + 1)):  # a contiguous block of the sorted CPUs
            color = "white" if label.startswith("L3") else "red"
            ax.add_patch(Rectangle((rows[0] - 0.5, rows[0] - 0.5), len(rows), len(rows), fill=False,
                                   edgecolor=color, linewidth=1.5))
    ax.set_xlabel("CPU (pong)")
    ax.set_ylabel("CPU (ping)")
    ax.set_title(title, fontsize=9)
    return fig


def overlapping_tick_labels(fig: Figure) -> list[tuple[str, str]]:
    """Return the pairs of visible tick labels, on any axis of ``fig``, whose drawn boxes intersect."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in axis.get_ticklabels()
                     if t.get_visible() and t.get_text()]
            for i, (a, box_a) in enumerate(boxes):
                found += [(a, b) for b, box_b in boxes[i + 1:] if box_a.overlaps(box_b)]
    return found


SIDE_COLOURS = {"BASE": "tab:blue", "NEW": "tab:orange"}


def comparison_figure(title: str, metric: str, unit: str,
                      sides: Mapping[str, Sequence[tuple[str, Sequence[Sequence[float]]]]], caption: str) -> Figure:
    """Return both sides' rounds on one axis, grouped by run and invocation, as criterion.rs draws base and new.

    ``sides`` maps "BASE" and "NEW" to their runs: (run id, per invocation its round values).
    Each invocation is a column of dots (its rounds) with a bar at its figure (their median);
    a dashed line per side marks its figure (median over runs of the run figures). ``caption``
    (the ratio, its CI, the basis and the verdict) is written on the plot, so a reader sees at
    once whether the difference is bigger than the spread between invocations and runs.
    """
    columns = sum(len(invs) for runs in sides.values() for _, invs in runs)
    fig = _figure(max(7.5, 0.32 * columns + 3.5), 4.6)
    ax = fig.add_subplot()
    x, ticks, labels = 0.0, [], []
    for side, runs in sides.items():
        colour = SIDE_COLOURS.get(side, "tab:gray")
        start, run_figures = x, []
        for run_id, invocations in runs:
            first = x
            figures = []
            for k, rounds in enumerate(invocations):
                values = np.asarray(rounds, dtype=float)
                ax.plot(np.full(values.size, x), values, "o", ms=3, alpha=0.55, color=colour,
                        label=side if (x == start and k == 0) else None)
                figure = float(np.median(values))
                figures.append(figure)
                ax.plot([x - 0.3, x + 0.3], [figure, figure], "-", lw=2, color=colour)
                x += 1.0
            run_figures.append(float(np.median(figures)))
            ticks.append((first + x - 1.0) / 2)
            labels.append(f"{side}\n…{run_id[-6:]}")
            x += 0.6  # a gap between runs
        if run_figures:
            ax.hlines(float(np.median(run_figures)), start - 0.4, x - 1.0, colors=colour, linestyles="--", lw=1)
        x += 1.0  # a wider gap between the sides
    ax.set_xticks(ticks, labels, fontsize=7)
    _unit_axis(ax.yaxis, unit)
    ax.set_ylabel(metric)
    ax.set_title(f"{title}\n{caption}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig
