"""The report's figures: units on the axes, no overlapping tick labels, lines only over the data."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.render import plots


def groups(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"4w compact elements={1024 * (i + 1)}\nworker-host-{i}.example.org\nworker {i}":
            150e6 * (1 + 0.01 * rng.standard_normal(10)) for i in range(n)}


@pytest.mark.parametrize("count", [1, 3, 8, 24, 48])
def test_distribution_tick_labels_never_overlap_and_carry_the_unit(count):
    fig = plots.distribution_figure("cpu.sqrt_mod", "element_ops_per_s", "element ops/s", groups(count))
    assert plots.overlapping_tick_labels(fig) == []
    ylabels = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert ylabels and all(t == "0" or t.endswith("M element ops/s") for t in ylabels), ylabels


def test_scaling_figure_lines_span_the_measured_n_only():
    points = [{"n": n, "throughput_median": 100e6 * n / (1 + 0.1 * (n - 1)),
               "throughput_ci_low": None, "throughput_ci_high": None} for n in (1, 2, 4, 8, 16)]
    fig = plots.scaling_figure("t", "workers", "element_ops_per_s", "element ops/s", points,
                               usl=(100e6, 0.1, 0.0), amdahl=(100e6, 0.1))
    assert plots.overlapping_tick_labels(fig) == []
    for line in fig.axes[0].get_lines():
        x = line.get_xdata()
        if len(x) > 5:  # the ideal, Amdahl and USL curves
            assert (min(x), max(x)) == (1, 16)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "2", "4", "8", "16"]


def test_working_set_figure_marks_caches_without_overlap():
    sizes = [2**k for k in range(12, 31)]
    fig = plots.working_set_figure("latency", "ns per load", "ns",
                                   {"1w": [(s, 1.0 + np.log2(s) - 12) for s in sizes]},
                                   {"L1d": 48 << 10, "L2": 1 << 21, "L3": 32 << 20})
    assert plots.overlapping_tick_labels(fig) == []


def test_the_overlap_check_can_fail():
    """Two tick labels forced onto one spot are reported, so a passing check means something."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.set_xticks([0, 0.001], ["a long label", "another long label"])
    assert plots.overlapping_tick_labels(fig) == [("a long label", "another long label")]


def test_latency_figure_reads_percentiles_on_the_x_axis():
    from orchestrator.analysis.latency import percentile_spectrum
    from workloads.histogram import LatencyHistogram

    rng = np.random.default_rng(0)
    hist = LatencyHistogram.of((rng.lognormal(0, 0.5, 100_000) * 1e6).astype(np.int64)).encode()
    q, v = percentile_spectrum(hist, "ms")
    assert q[0] == 0 and q[-1] < 1 and np.all(np.diff(v) > 0)
    fig = plots.latency_figure("net.http", "ms", {"latency": (q, v)})
    assert plots.overlapping_tick_labels(fig) == []
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert labels[:4] == ["0%", "90%", "99%", "99.9%"]


def test_c2c_heatmap_and_its_same_and_cross_l3_medians():
    from orchestrator.render.report import c2c_summary

    cpus = list(range(8))
    domain = {c: c // 4 for c in cpus}  # two L3 domains of 4 CPUs, like two CCDs
    matrix = {(a, b): (20.0 if domain[a] == domain[b] else 80.0) for a in cpus for b in cpus if a < b}
    outlines = [("L3 #0", (0, 1, 2, 3)), ("L3 #1", (4, 5, 6, 7))]
    fig = plots.c2c_heatmap("c2c", cpus, matrix, outlines)
    assert plots.overlapping_tick_labels(fig) == []
    assert len(fig.axes[0].patches) == 2  # one outline per L3 domain
    assert c2c_summary(matrix, outlines) == ("One-way cache-line latency, same L3: median 20 ns over 12 pairs; "
                                            "across L3 domains: median 80 ns over 16 pairs.")


@pytest.mark.parametrize("top", [900.0, 45_000.0, 2.5e6])
def test_hockey_stick_marks_the_slo_and_the_knee_without_overlap(top):
    steps = [{"offered_per_s": r, "value_ms": 2 + 40 * max(0.0, r / top - 0.5), "ci_low_ms": None,
              "ci_high_ms": 3 + 40 * max(0.0, r / top - 0.5), "passed": r <= top / 2}
             for r in np.linspace(top / 8, top, 9)]
    fig = plots.hockey_stick_figure("net.http", "p99", 20.0, steps, top / 2, "requests/s")
    assert plots.overlapping_tick_labels(fig) == []
    ax = fig.axes[0]
    assert ax.get_xlabel() == "offered load, requests/s (open loop, all workers)"
    flat = [line for line in ax.get_lines() if len(set(line.get_ydata())) == 1 and len(line.get_ydata()) == 2]
    assert 20.0 in {line.get_ydata()[0] for line in flat}  # the SLO line
    assert top / 2 in {line.get_xdata()[0] for line in ax.get_lines() if len(set(line.get_xdata())) == 1}


@pytest.mark.parametrize("runs", [1, 2, 8])
def test_comparison_figure_groups_rounds_by_run_and_invocation_and_writes_the_ratio(runs):
    rng = np.random.default_rng(0)
    sides = {side: [(f"2026010{i}T000000Z-{side.lower()}{i:05d}", [list(100e9 * f * (1 + 0.01 * rng.standard_normal(3)))
                                                                  for _ in range(5)]) for i in range(runs)]
             for side, f in (("BASE", 1.0), ("NEW", 0.9))}
    caption = "NEW/BASE 0.900 (95% CI 0.880–0.920); basis runs; slower"
    fig = plots.comparison_figure("memory.stream", "stream_bytes_per_s", "B/s", sides, caption)
    assert plots.overlapping_tick_labels(fig) == []
    (ax,) = fig.axes
    assert caption in ax.get_title()
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(dots) == 2 * runs * 5  # one column of dots per invocation
    assert len(ax.get_xticklabels()) == 2 * runs and "GB/s" in ax.get_yticklabels()[1].get_text()
