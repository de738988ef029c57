"""Worker actors, started fresh by each node's agent: never waited for without a deadline, CPUs given back."""

from __future__ import annotations

import pytest
from dataset import run_query

from orchestrator.pipeline.agents import NodeAgents
from orchestrator.pipeline.jobs import run_sweep
from orchestrator.pipeline.sweep_file import parse_sweep
from orchestrator.pipeline.waits import describe_error
from orchestrator.records import Shape, Trial, WorkerSlot
from orchestrator.settings import Deadlines

pytestmark = pytest.mark.ray


@pytest.mark.parametrize("matrix", [{"threads_per_worker": [1, 2]}, {"workers_per_node": [2, 1]}])
def test_a_sweep_over_actor_shapes_completes_on_two_cpus(ray_local, tmp_path, matrix):
    # Invocations of the two points take turns: each invocation's workers must give their CPUs back.
    spec = parse_sweep({**matrix, "invocations": 2, "repetitions": 2, "min_time": 0.02, "warmup": 0, "lock": False,
                        "workloads": {"cpu.sqrt_mod": {"elements": 2048}}})
    session = run_sweep(spec, None, tmp_path).session
    assert session.status == "complete"
    assert len({r["trial_id"] for r in session.rows if r["status"] == "ok"}) == 2


@pytest.fixture
def both_cpus_held(ray_local):
    """Another actor holds both CPUs of the session's Ray until the test ends."""
    hold = ray_local.remote(num_cpus=2)(type("Hold", (), {"ping": lambda self: 1})).remote()
    ray_local.get(hold.ping.remote())
    yield
    ray_local.kill(hold)


def test_workers_that_cannot_start_fail_within_the_deadline_with_a_sentence(ray_local, both_cpus_held):
    from cluster.probe import probe_nodes

    (node,) = probe_nodes(60, embedded=True)
    trial = Trial("t", "cpu.sqrt_mod", {}, Shape(), (WorkerSlot(0, node.node_id, (), False),))
    agents = NodeAgents.place([node], 30)
    try:
        with pytest.raises(ray_local.exceptions.RayTaskError) as raised:
            ray_local.get(agents.by_node[node.node_id].start.remote(trial, 1.0))
    finally:
        agents.close()
    text = describe_error(raised.value)
    assert text.startswith(f"1 worker(s) of 1 CPU(s) each did not start within 1 s on node {node.node_id[:12]} ")
    assert "which offers 2 CPUs to Ray; 0 CPUs are free in the cluster now" in text and "`ray status`" in text


def test_a_trial_whose_workers_cannot_start_fails_in_time_and_the_run_goes_on(ray_local, tmp_path, monkeypatch):
    # One CPU is held: the 2-worker trial cannot start (8 s to try: time enough for the 1-worker
    # one to start its worker on a busy machine, where a process start takes seconds), the 1-worker one then runs.
    monkeypatch.setattr("orchestrator.pipeline.trial.DEADLINES", Deadlines(actor_start_s=8.0))
    hold = ray_local.remote(num_cpus=1)(type("Hold", (), {"ping": lambda self: 1})).remote()
    ray_local.get(hold.ping.remote())
    try:
        spec = parse_sweep({"workers_per_node": [2, 1], "invocations": 1, "repetitions": 2, "min_time": 0.02, "warmup": 0,
                            "lock": False, "workloads": {"cpu.sqrt_mod": {"elements": 2048}}})
        session = run_sweep(spec, None, tmp_path).session
    finally:
        ray_local.kill(hold)
    assert session.status == "failed"
    rows = {r["workers"]: r for r in run_query(tmp_path, "SELECT workers, status, error FROM trials").to_pylist()}
    assert rows[1]["status"] == "ok"
    assert rows[2]["status"] == "failed"
    assert rows[2]["error"].startswith("1 worker(s) of 1 CPU(s) each did not start within 8 s on node ")
