"""A sweep's scaling analysis: per-round throughputs, series grouping, fits, the scaling table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from orchestrator.analysis.scaling_series import analyze, scaling_rows, trial_throughputs
from orchestrator.store.schemas import SCALING_SCHEMA
from orchestrator.store.writer import RunStore


def _sample(tid, rank, rep, start_s, end_s, ops, warmup=False):
    return {"trial_id": tid, "worker_rank": rank, "repetition": rep, "warmup": warmup, "metric": "ops",
            "value": ops / (end_s - start_s), "ops": ops, "start_ns": int(start_s * 1e9), "end_ns": int(end_s * 1e9)}


def test_trial_throughputs_per_round():
    # Repetition 0: worker 0 runs 0-1 s (100 ops), worker 1 runs 0.5-2.5 s (200 ops): 300 ops
    # in a 2.5-s round = 120 ops/s (a sum of the rates would say 200). Repetition 1 is
    # aligned: 2 x 300 ops in 1 s. Repetition 2 lacks worker 1 and is dropped; warm-up ignored.
    rows = [_sample("t", 0, 0, 0.0, 1.0, 100), _sample("t", 1, 0, 0.5, 2.5, 200),
            _sample("t", 0, 1, 3.0, 4.0, 300), _sample("t", 1, 1, 3.0, 4.0, 300),
            _sample("t", 0, 2, 5.0, 6.0, 100), _sample("t", 0, -1, 0.0, 0.1, 1e6, warmup=True)]
    got = trial_throughputs(pa.Table.from_pylist(rows), "ops")
    np.testing.assert_allclose(got["t"], [120.0, 600.0])


def _trial_row(tid, nodes, workers, status="ok"):
    return {"trial_id": tid, "workload": "w", "params": "{}", "mode": "weak", "nodes": nodes,
            "workers": workers, "placement": "compact", "threads_per_worker": 1, "status": status}


def test_analyze_nodes_dimension_with_usl_fit():
    sigma, kappa, lam = 0.05, 0.002, 100.0
    usl = {n: lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1)) for n in (1, 2, 3, 4, 6)}
    throughputs = {f"t{n}": np.array([x * 0.99, x, x * 1.01]) for n, x in usl.items()}
    trials = [_trial_row(f"t{n}", n, n) for n in usl] + [_trial_row("bad", 8, 8, status="failed")]
    analyses = analyze(trials, throughputs, {"w": ("ops", "ops/s")})
    by_dim = {a.dimension: a for a in analyses}
    assert set(by_dim) == {"nodes"}  # each node count has one workers-per-node value
    a = by_dim["nodes"]
    assert [r.n for r in a.rows] == [1, 2, 3, 4, 6]
    assert a.usl is not None and a.usl.sigma == pytest.approx(sigma, abs=0.02)
    assert a.amdahl is not None and a.fit_note is None
    assert a.rows[1].efficiency == pytest.approx(usl[2] / usl[1] / 2)
    rows = scaling_rows("r", analyses)
    assert len(rows) == 5 and pa.Table.from_pylist(rows, SCALING_SCHEMA).num_rows == 5
    assert {r["fit_scale"] for r in rows} == {"log"} and all(r["amdahl_x1"] > 0 for r in rows)
    assert a.verdict.endswith("; nodes share one host: this measures the host, not horizontal scaling")
    spread = [{**_trial_row(f"t{n}", n, n), "hosts": n} for n in usl]  # one machine per node
    (b,) = analyze(spread, throughputs, {"w": ("ops", "ops/s")})
    assert "share one host" not in b.verdict and b.hosts == (1, 2, 3, 4, 6)


def test_analyze_two_points_says_not_enough_points():
    trials = [_trial_row("a", 1, 1), _trial_row("b", 1, 2)]
    (a,) = analyze(trials, {"a": np.array([1.0, 1.0, 1.0]), "b": np.array([2.0, 2.0, 2.0])}, {"w": ("ops", "ops/s")})
    assert a.dimension == "workers" and a.series == "nodes=1 placement=compact threads_per_worker=1"
    assert a.amdahl is None and a.usl is None
    assert a.fit_note.startswith("not enough points: Amdahl fit needs at least 3 distinct N")
    assert a.verdict == "efficiency 1.00 at 2 workers; no verdict without CIs (every point needs 6 rounds)"
    noisy = np.random.default_rng(0).normal(1.0, 0.01, 8)
    (a,) = analyze(trials, {"a": noisy, "b": 2 * noisy[::-1]}, {"w": ("ops", "ops/s")})
    assert a.verdict.startswith("scales linearly to 2 workers") and a.rows[1].efficiency_ci_low >= 0.9


def test_falling_throughput_gets_no_amdahl_fit_which_could_only_say_plateau():
    rng = np.random.default_rng(3)
    medians = {1: 100.0, 2: 190.0, 4: 300.0, 8: 200.0}  # falls after 4 workers, well beyond the noise
    throughputs = {f"t{n}": x * (1 + 0.01 * rng.standard_normal(8)) for n, x in medians.items()}
    (a,) = analyze([_trial_row(f"t{n}", 1, n) for n in medians], throughputs, {"w": ("ops", "ops/s")})
    assert a.verdict.startswith("retrograde after 4 workers")
    assert a.amdahl is None and a.fit_note == ("no Amdahl fit: throughput falls after N=4, and Amdahl's law only "
                                               "rises toward a ceiling")
    assert a.usl is not None  # the USL can bend down: it stays


def test_a_caption_claims_no_peak_below_every_n_measured():
    from dataclasses import replace

    from orchestrator.analysis.scaling import USLFit
    from orchestrator.render.run_tables import scaling_tables

    trials = [_trial_row(f"t{n}", 1, n) for n in (1, 2, 4, 8)]
    (a,) = analyze(trials, {f"t{n}": np.full(6, 100.0 * n) for n in (1, 2, 4, 8)}, {"w": ("ops", "ops/s")})
    below = replace(a, usl=USLFit(100.0, 0.1, 2.0, (90, 110), (0, 0.2), (1.0, 3.0), 0.67, 5.0, (0.5, 0.9)))
    (table,) = scaling_tables([below])
    assert "no peak N* claimed (the fitted 0.7 lies below every N measured)" in table.caption
    assert "peak N* 0.7 (95% CI" not in table.caption


def test_write_scaling_is_queryable(tmp_path):
    from dataset import run_query

    trials = [_trial_row("a", 1, 1), _trial_row("b", 1, 2)]
    analyses = analyze(trials, {"a": np.array([1.0, 1.0, 1.0]), "b": np.array([1.5, 1.5, 1.5])},
                       {"w": ("ops", "ops/s")})
    RunStore(tmp_path, "20261129T085512Z-1a2b3c").write_scaling(scaling_rows("20261129T085512Z-1a2b3c", analyses))
    table = run_query(tmp_path, "SELECT n, efficiency FROM scaling ORDER BY n")
    assert table.to_pylist() == [{"n": 1, "efficiency": 1.0}, {"n": 2, "efficiency": 0.75}]


