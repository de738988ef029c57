"""Worker actors: released when a trial needs other shapes, and never waited for without a deadline."""

from __future__ import annotations

import pytest

from orchestrator.pipeline.actors import ActorPool, ActorsNotStarted
from orchestrator.pipeline.jobs import run_sweep
from orchestrator.pipeline.sweep_file import parse_sweep
from orchestrator.records import WorkerSlot

pytestmark = pytest.mark.ray


@pytest.mark.parametrize("matrix", [{"threads_per_worker": [1, 2]}, {"workers_per_node": [2, 1]}])
def test_a_sweep_over_actor_shapes_completes_on_two_cpus(ray_local, tmp_path, matrix):
    # Each point needs actors of another shape; the ones of the last point must give their CPUs back.
    spec = parse_sweep({**matrix, "invocations": 1, "repetitions": 2, "min_time": 0.02, "warmup": 0, "lock": False,
                        "workloads": {"cpu.sqrt_mod": {"elements": 2048}}})
    session = run_sweep(spec, None, tmp_path).session
    assert session.status == "complete"
    assert len({r["trial_id"] for r in session.rows if r["status"] == "ok"}) == 2


def test_workers_that_cannot_start_fail_within_the_deadline_with_a_sentence(ray_local):
    hold = ray_local.remote(num_cpus=2)(type("Hold", (), {"ping": lambda self: 1})).remote()
    ray_local.get(hold.ping.remote())  # both CPUs are now held
    node = ray_local.get_runtime_context().get_node_id()
    pool = ActorPool()
    try:
        with pytest.raises(ActorsNotStarted) as raised:
            pool.acquire([WorkerSlot(0, node, (), False)], 1, deadline_s=1.0)
    finally:
        ray_local.kill(hold)
        pool.close()
    text = str(raised.value)
    assert "did not start within 1 s" in text and "0 CPUs are free" in text and "`ray status`" in text
