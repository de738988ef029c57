"""Tests of workloads/memory.py: STREAM results, chase, gathers, allocation, parameters, cleanup."""

from __future__ import annotations

import mmap
import threading
from pathlib import Path

import numpy as np
import pytest

from workloads import UserError, WorkerContext, get_workload
from workloads.harness import calibrate, time_run
from workloads.kernels import compiled
from workloads.memory import (
    LATENCY_LABELS,
    SWEEP_LABELS,
    Alloc,
    Latency,
    RandomAccess,
    Stream,
    cache_sizes,
    chase_cycle,
    gather,
    latency_sweep_sizes,
    line_permutation,
    plan_points,
    stream_expected,
    stream_min_array_bytes,
    sweep_sizes,
)
from workloads.units import MIB

SMALL_CACHES = WorkerContext(cache_sizes_bytes={"L1d": 4096, "L2": 16384, "L3": 65536})


def thp_mode() -> str:
    """Return the kernel's THP mode ("always", "madvise", "never"; "never" when unknown)."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "never"
    return text.split("[", 1)[1].split("]", 1)[0]


def machine_l3_bytes() -> int:
    """Return CPU 0's L3 size from sysfs, else memory.cache_sizes' fallback."""
    try:
        for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
            if (index / "level").read_text().strip() == "3":
                size = (index / "size").read_text().strip().upper().rstrip("B")
                return int(size[:-1]) * {"K": 1 << 10, "M": 1 << 20}[size[-1]]
    except (OSError, ValueError, KeyError):
        pass
    return cache_sizes(WorkerContext())["L3"]


def measure(workload, ctx=None):
    """Set up, calibrate to 10 ms, time one sample, tear down; return the measurement."""
    threads = threading.active_count()
    workload.setup(ctx or WorkerContext())
    try:
        n = calibrate(workload.run, 0.01)
        timed = time_run(workload.run, n)
    finally:
        workload.teardown()
    assert threading.active_count() == threads
    assert timed.elapsed_ns > 0 and timed.measurement.ops > 0
    return timed.measurement


def test_registered():
    assert get_workload("memory.latency") is Latency
    assert get_workload("memory.stream") is Stream
    assert get_workload("memory.random_access") is RandomAccess
    assert get_workload("memory.alloc") is Alloc


@pytest.mark.parametrize("variant", ["nt", "vector", "loop"])
@pytest.mark.parametrize("threads", [1, 2])
def test_stream_matches_closed_form_bit_for_bit(threads, variant):
    import numba

    before = numba.get_num_threads()
    w = Stream({"size_mib": 8, "variant": variant})
    w.setup(WorkerContext(threads=threads, cache_sizes_bytes=SMALL_CACHES.cache_sizes_bytes))
    assert w.threads == threads
    if threads > 1:
        assert numba.get_num_threads() == threads
    for passes in (1, 3, 7):
        m = w.run(passes)
        assert m.ops == passes * 80 * w.a.size  # STREAM's byte count: 16+16+24+24 per element
        assert m.flags == frozenset()  # 8 MiB arrays >= 1M elements and 4x a 64 KiB L3
    a, b, c = stream_expected(11)
    assert w.passes_done == 11
    assert np.all(w.a == a) and np.all(w.b == b) and np.all(w.c == c)
    assert w.check_results() == 0.0
    w.b[5] += 1e-6
    with pytest.raises(RuntimeError, match="STREAM results wrong"):
        w.check_results()
    with pytest.raises(RuntimeError, match="STREAM results wrong"):
        w.teardown()  # a wrong answer fails the trial, and the arrays are still freed
    assert not hasattr(w, "a")
    assert numba.get_num_threads() == before


def test_stream_min_array_bytes_is_per_array():
    assert stream_min_array_bytes(WorkerContext()) == 4 * (32 << 20)  # fallback L3
    assert stream_min_array_bytes(SMALL_CACHES) == 8_000_000  # 1M float64s beat 4 x 64 KiB
    both_ccds = WorkerContext(cache_sizes_bytes={"L3": 96 << 20, "L3_total": 128 << 20})
    assert stream_min_array_bytes(both_ccds) == 512 << 20


def test_stream_small_arrays_are_flagged_cache_resident():
    w = Stream({"size_mib": 1})
    w.setup(WorkerContext())  # 1 MiB < 4 x 32 MiB
    m = w.run(1)
    w.teardown()
    assert m.flags == frozenset({"cache_resident"})
    assert set(m.flags) <= set(Stream.sample_flags)
    assert "cache bandwidth" in Stream.sample_flags["cache_resident"]
    assert w.compile_s > 0


def test_stream_expected_first_pass():
    q = np.sqrt(2.0) - 1.0
    a, b, c = stream_expected(1)
    assert (c, b) == (1.0 + q, q)
    assert a == q + q * (1.0 + q)
    # 2q + q^2 = 1: values stay bounded over many passes.
    assert abs(stream_expected(10_000)[0] - 1.0) < 1e-9


def test_stream_measurement_best_rate_at_least_mean_rate():
    m = measure(Stream({"size_mib": 2}))
    kernels = ("copy", "scale", "add", "triad")
    assert set(m.metrics) == {f"{k}_gbs" for k in kernels} | {f"{k}_best_gbs" for k in kernels}
    assert all(v > 0 for v in m.metrics.values())
    assert {x.name for x in Stream.metrics} == set(m.metrics)
    for k in kernels:  # the fastest pass is never slower than the mean pass
        assert m.metrics[f"{k}_best_gbs"] >= m.metrics[f"{k}_gbs"]


@pytest.mark.parametrize("given", [{"size_mib": -1}, {"size_mib": 0}, {"size_mib": "big"}])
def test_stream_bad_params(given):
    with pytest.raises(UserError, match="size_mib"):
        Stream(given)


def test_stream_variant_defaults_to_nt_and_refuses_others():
    assert Stream({}).params["variant"] == "nt"
    with pytest.raises(UserError, match="variant"):
        Stream({"variant": "avx512"})


@pytest.mark.ray
def test_stream_variant_and_compiler_are_stored(ray_local, tmp_path):
    import json

    from dataset import run_query
    from typer.testing import CliRunner

    from orchestrator.cli import app
    from workloads.kernels import compiler_facts

    result = CliRunner().invoke(app, [
        "run", "memory.stream", "--repetitions", "1", "--warmup", "0", "--min-time", "0.01",
        "--param", "memory.stream.size_mib=8", "--param", "memory.stream.variant=vector",
        "--results", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    params = run_query(tmp_path, "SELECT DISTINCT params FROM samples").to_pylist()
    assert [json.loads(r["params"])["variant"] for r in params] == ["vector"]
    (node,) = run_query(tmp_path, "SELECT compiler FROM nodes").to_pylist()
    assert json.loads(node["compiler"]) == compiler_facts()


@pytest.mark.parametrize("text", ["-1MiB", "lots", "0", "32", "2TiB"])
def test_random_access_bad_working_set(text):
    with pytest.raises(UserError, match="working_set"):
        RandomAccess({"working_set": text})


def test_random_access_accepts_auto_and_sizes():
    assert RandomAccess({"working_set": "AUTO"}).params["working_set"] == "AUTO"
    assert RandomAccess({"working_set": "64KiB"}).params["working_set"] == "64KiB"


def test_gather_equals_fancy_indexing():
    rng = np.random.default_rng(1)
    data = rng.standard_normal(1000)
    idx = rng.integers(0, data.size, size=777).astype(np.intp)
    out = np.empty(777)
    gather(data, idx, out)
    assert np.array_equal(out, data[idx])
    chunked = np.empty(100)  # 8 chunks, the last one 77 long
    gather(data, idx, chunked)
    assert np.array_equal(chunked[:77], data[idx[700:]])


def test_line_permutation_visits_every_line():
    idx = line_permutation(64 * 100, np.random.default_rng(0), min_accesses=250)
    assert idx.dtype == np.intp and idx.size == 300
    for rep in range(3):
        assert sorted(idx[rep * 100:(rep + 1) * 100]) == list(range(0, 800, 8))


def test_sweep_sizes_and_fallback():
    assert cache_sizes(WorkerContext()) == {"L1d": 32 << 10, "L2": 1 << 20, "L3": 32 << 20}
    assert cache_sizes(WorkerContext(cache_sizes_bytes={"L3": 96 << 20}))["L3"] == 96 << 20
    sizes = sweep_sizes({"L1d": 32 << 10, "L2": 1 << 20, "L3": 96 << 20})
    assert tuple(sizes) == SWEEP_LABELS
    assert sizes["L1d/4"] == 8 << 10 and sizes["L1d"] == 32 << 10 and sizes["L2"] == 1 << 20
    assert sizes["L3"] == 96 << 20 and sizes["4xL3"] == 384 << 20
    assert sizes["L1d~L2"] == 181 << 10  # sqrt(32 KiB * 1 MiB) rounded down to 64 B
    assert all(s % 64 == 0 for s in sizes.values())


def test_random_access_gathers_the_working_set():
    w = RandomAccess({"working_set": "64KiB"})
    w.setup(WorkerContext())
    (idx,) = w.indices.values()
    assert w.data.nbytes == 64 << 10 and idx.max() < w.data.size
    m = w.run(2)
    assert m.ops == 2 * idx.size
    last = idx[(idx.size - 1) // w.out.size * w.out.size:]
    assert np.array_equal(w.out[:last.size], w.data[last])
    assert set(m.metrics) == {"ns_per_access"}
    w.teardown()


def test_random_access_auto_reports_every_point():
    m = measure(RandomAccess({"working_set": "auto"}), SMALL_CACHES)
    declared = {x.name for x in RandomAccess.metrics}
    assert set(m.metrics) <= declared
    for label in SWEEP_LABELS:
        assert m.metrics[f"ns_per_access@{label}"] > 0
    assert m.metrics["working_set_bytes@4xL3"] == 4 * 65536
    assert m.metrics["working_set_bytes@L1d/4"] == 1024


def test_random_access_fixed_measurement():
    m = measure(RandomAccess({"working_set": "256KiB"}))
    assert set(m.metrics) == {"ns_per_access"} and m.metrics["ns_per_access"] > 0


def test_alloc_measurement_one_interval():
    w = Alloc({"size_mib": 4})
    w.setup(WorkerContext())
    n = calibrate(w.run, 0.05)
    timed = time_run(w.run, n)
    m = timed.measurement
    assert m.ops == n * (4 << 20)
    # The harness's figure and touch_gbs time the same loop (RSS is read after it).
    assert m.ops / timed.elapsed_ns == pytest.approx(m.metrics["touch_gbs"], rel=0.02)
    assert m.metrics["peak_rss_bytes"] >= 4 << 20
    peak = next(x for x in Alloc.metrics if x.name == "peak_rss_bytes")
    assert peak.higher_is_better is None


def test_alloc_faults_every_page_of_fresh_memory():
    # A 4 MiB np.empty array is reused by glibc after the first free and faults no more;
    # a fresh mapping faults every base page, every iteration.
    w = Alloc({"size_mib": 4, "pages": "base"})
    w.setup(WorkerContext())
    m = w.run(5)
    assert abs(m.metrics["minor_faults_per_mib"] - MIB / mmap.PAGESIZE) < 2


@pytest.mark.skipif(thp_mode() == "never", reason="transparent huge pages are disabled")
def test_alloc_thp_takes_fewer_faults():
    w = Alloc({"size_mib": 8, "pages": "thp", "touch": "fill"})
    w.setup(WorkerContext())
    m = w.run(3)
    assert m.metrics["minor_faults_per_mib"] < MIB / mmap.PAGESIZE / 2


@pytest.mark.parametrize("given", [{"size_mib": -5}, {"touch": "none"}, {"pages": "huge"}])
def test_alloc_bad_params(given):
    with pytest.raises(UserError):
        Alloc(given)


# ------------------------------------------------------------------------------------------
# memory.latency
# ------------------------------------------------------------------------------------------


def follow(successor: np.ndarray) -> list[int]:
    """Return the lines visited from line 0 until the walk returns to 0."""
    seen, line = [0], int(successor[0])
    while line != 0 and len(seen) <= successor.size:
        seen.append(line)
        line = int(successor[line])
    return seen


@pytest.mark.parametrize("lines", [1, 2, 3, 1000])
def test_chase_cycle_is_one_cycle_through_every_line(lines):
    kernels, _ = compiled("sattolo_swaps")
    successor = chase_cycle(lines, np.random.default_rng(7), kernels.sattolo_swaps)
    assert sorted(follow(successor)) == list(range(lines))  # every line once, then back to 0
    python = chase_cycle(lines, np.random.default_rng(7))  # the same swaps without numba
    assert np.array_equal(successor, python)


def test_chase_cycle_draws_both_three_cycles():
    cycles = {tuple(chase_cycle(3, np.random.default_rng(seed))) for seed in range(40)}
    assert cycles == {(1, 2, 0), (2, 0, 1)}  # Sattolo: only n-cycles, each of them


def test_latency_sweep_sizes_and_buffers():
    sizes = latency_sweep_sizes({"L1d": 32 << 10, "L2": 1 << 20, "L3": 96 << 20})
    assert tuple(sizes) == LATENCY_LABELS
    assert sizes["L1d/4"] == 8 << 10 and sizes["0.75xL1d"] == 24 << 10
    assert sizes["1.5xL2"] == 1536 << 10 and sizes["8xL3"] == 768 << 20
    assert sizes["L1d~L2"] == 181 << 10  # sqrt(32 KiB * 1 MiB) rounded down to 64 B
    assert all(v % 64 == 0 for v in sizes.values())
    points = plan_points(sizes)
    assert [p.label for p in points] == list(LATENCY_LABELS)
    by_buffer = {}
    for p in points:
        by_buffer.setdefault(p.buffer, []).append(p)
    assert sorted(by_buffer) == [0, 1, 2]
    assert max(by_buffer[0], key=lambda p: p.size_bytes).label == "8xL3"
    for members in by_buffer.values():  # 8 word slots per line, one per point
        assert sorted(p.slot for p in members) == list(range(len(members)))
    assert min(p.size_bytes for p in by_buffer[0]) >= max(p.size_bytes for p in by_buffer[1])


def test_latency_pointers_walk_every_line_of_each_point():
    w = Latency({"working_set": "auto", "hops": 1 << 10})
    w.setup(SMALL_CACHES)
    try:
        for p in w.points:
            base = w._maps[p.buffer][1].ctypes.data
            start = w._position[p.label]
            assert start == base + 8 * p.slot
            words = w._maps[p.buffer][1][p.slot:p.lines * 8:8]
            successor = (words - base - 8 * p.slot) // 64  # a new array: no view kept
            del words
            assert sorted(follow(successor)) == list(range(p.lines))
            assert w._chase(start, p.lines) == start  # the compiled chase closes the cycle
    finally:
        w.teardown()


def test_latency_auto_reports_every_point():
    w = Latency({"working_set": "auto", "hops": 1 << 10})
    m = measure(w, SMALL_CACHES)
    declared = {x.name for x in Latency.metrics}
    assert set(m.metrics) <= declared
    for label in LATENCY_LABELS:
        assert m.metrics[f"ns_per_load@{label}"] > 0
    assert m.metrics["working_set_bytes@8xL3"] == 8 * 65536
    assert m.metrics["working_set_bytes@L1d/4"] == 1024
    assert ("cycles_per_load@L1d" in m.metrics) == (w.core_ghz is not None)
    assert "ns_per_load" not in m.metrics
    assert w.compile_s > 0


def walk(successor: np.ndarray, line: int, hops: int) -> int:
    """Return the line ``hops`` steps after ``line`` along ``successor``."""
    for _ in range(hops):
        line = int(successor[line])
    return line


def test_latency_times_exactly_the_hops_it_counts():
    # 1000 lines and 1024 hops per iteration: each run ends on a different line, so the
    # position after it tells exactly how many loads the kernel did.
    w = Latency({"working_set": "64000B", "hops": 1024})
    w.setup(WorkerContext())
    try:
        (p,) = w.points
        base = w._maps[p.buffer][1].ctypes.data + 8 * p.slot
        words = w._maps[p.buffer][1][p.slot:p.lines * 8:8]
        successor = (words - base) // 64
        del words
        line = 0
        for n in (1, 2, 3):
            m = w.run(n)
            assert m.ops == 1000 + n * 1024  # the warm walk (one lap) and the timed hops
            line = walk(successor, line, m.ops)
            assert w._position[""] == base + 64 * line
            assert m.metrics["ns_per_load"] > 0
    finally:
        w.teardown()


def test_latency_l1_is_faster_than_four_times_l3():
    results = {}
    for label, size in (("l1", 16 << 10), ("dram", 4 * machine_l3_bytes())):
        w = Latency({"working_set": f"{size}B", "hops": 20_000})
        w.setup(WorkerContext())
        try:
            m = w.run(1)
        finally:
            w.teardown()
        assert m.ops == min(size // 64, 20_000) + 20_000  # warm walk + timed hops
        assert m.metrics["working_set_bytes"] == size
        results[label] = m.metrics["ns_per_load"]
    assert results["l1"] < 0.25 * results["dram"]


@pytest.mark.parametrize("pages", ["thp", "base"])
def test_latency_pages(pages):
    w = Latency({"working_set": "8MiB", "hops": 1 << 10, "pages": pages})
    w.setup(WorkerContext())
    m = w.run(1)
    w.teardown()
    share = m.metrics["huge_page_share"]
    if pages == "base":
        assert share == 0.0 and m.flags == frozenset()
    elif thp_mode() == "never":
        assert m.flags == frozenset({"huge_pages_missing"})
    else:
        assert share > 0.5 and m.flags == frozenset()


@pytest.mark.parametrize("given", [{"working_set": "lots"}, {"working_set": "32"},
                                   {"pages": "huge"}, {"hops": 0}, {"seed": -1}])
def test_latency_bad_params(given):
    with pytest.raises(UserError):
        Latency(given)


def test_latency_registered_and_documented_as_counterpart():
    assert get_workload("memory.latency") is Latency
    assert "memory.random_access" in Latency.__doc__
    assert "memory.latency" in RandomAccess.__doc__
