"""Every wait on Ray has a deadline: past it, one sentence says what did not come, from where, and why."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from dataset import run_query

from orchestrator.pipeline import trial as trial_module
from orchestrator.pipeline.waits import (
    Expect,
    Sender,
    TrialTimeout,
    WaitExpired,
    describe_error,
    gather,
)
from orchestrator.settings import Deadlines

pytestmark = pytest.mark.ray


@pytest.fixture
def actors(ray_local):
    """Two fresh actors of 0 CPUs that wait as long as they are told (a stuck call keeps its actor busy)."""

    @ray_local.remote(num_cpus=0)
    class Slow:
        def pid(self) -> int:
            return os.getpid()

        def wait(self, seconds: float) -> float:
            time.sleep(seconds)
            return seconds

        def fail(self) -> None:
            raise ValueError("the workload's own error")

    pair = [Slow.remote(), Slow.remote()]
    ray_local.get([a.pid.remote() for a in pair])
    yield pair
    for a in pair:
        ray_local.kill(a)


def test_a_wait_past_its_deadline_names_what_did_not_come_and_why(ray_local, actors):
    node = ray_local.get_runtime_context().get_node_id()
    senders = [Sender("worker 0", node, "vm"), Sender("worker 1", node, "vm")]
    started = time.monotonic()
    with pytest.raises(WaitExpired) as raised:
        gather([actors[0].wait.remote(0), actors[1].wait.remote(30)], None, Expect("round 3 samples", 0.5, senders))
    assert time.monotonic() - started < 3
    assert str(raised.value) == (
        f"1 of 2 round 3 samples did not come within 0.5 s: worker 1 on node {node[:12]} (vm); their nodes are "
        "alive, so the calls are still running or stalled (a slow workload, an overloaded node, or CPUs another "
        "process holds: `ray status` shows what runs where).")


def test_the_trials_own_deadline_wins_when_it_is_nearer(actors):
    with pytest.raises(TrialTimeout):
        gather([actors[0].wait.remote(30)], time.monotonic() + 0.3, Expect("prepared workers", 60))


def test_a_failed_call_is_raised_without_waiting_for_the_slowest(ray_local, actors):
    started = time.monotonic()
    with pytest.raises(ray_local.exceptions.RayTaskError) as raised:
        gather([actors[0].wait.remote(20), actors[1].fail.remote()], None, Expect("results", 60))
    assert time.monotonic() - started < 5
    assert describe_error(raised.value) == "ValueError: the workload's own error"


def test_an_actor_killed_by_the_system_keeps_why_ray_says_it_died(ray_local):
    @ray_local.remote(num_cpus=0)
    class Victim:
        def pid(self) -> int:
            return os.getpid()

        def wait(self) -> None:
            time.sleep(30)

    victim = Victim.remote()
    pid = ray_local.get(victim.pid.remote())
    ref = victim.wait.remote()
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)  # as the OOM killer or another user's `ray stop --force` would
    with pytest.raises(ray_local.exceptions.RayActorError) as raised:
        gather([ref], None, Expect("results", 30))
    text = describe_error(raised.value)
    assert text.startswith("ActorDiedError: The actor died unexpectedly before finishing this task. (class_name ")
    assert f"Victim, pid {pid}, ip " in text
    assert "Worker exit type: SYSTEM_ERROR" in text and "OOM killer" in text  # the why, not the first line alone


def test_a_round_that_does_not_come_fails_its_trial_within_the_deadline_and_the_run_goes_on(ray_local, tmp_path,
                                                                                           monkeypatch):
    from orchestrator.pipeline.jobs import run_sweep
    from orchestrator.pipeline.sweep_file import parse_sweep

    # A batch of rounds may take 0.3 s plus its windows, which calibration's samples size: here the driver is
    # told they last 20 ms (as a workload whose samples slow down after calibration would have it). A one-second
    # command misses the deadline, 20 ms sqrt_mod samples do not.
    monkeypatch.setattr("orchestrator.pipeline.rounds.DEADLINES", Deadlines(round_floor_s=0.3, round_factor=0))
    measure_rounds = trial_module.measure_rounds

    def told_20_ms(agents, sampling, iterations, offsets, deadline, margin, senders, sample_s, first):
        return measure_rounds(agents, sampling, iterations, offsets, deadline, margin, senders, 0.02, first)

    monkeypatch.setattr(trial_module, "measure_rounds", told_20_ms)
    spec = parse_sweep({"repetitions": 2, "min_time": 0.02, "warmup": 0, "lock": False, "workloads": {
        "command": {"cmd": "sleep 1"}, "cpu.sqrt_mod": {"elements": 2048}}})
    started = time.monotonic()
    session = run_sweep(spec, None, tmp_path).session
    assert time.monotonic() - started < 30
    assert session.status == "failed"
    errors = {r["workload"]: r["error"] for r in run_query(tmp_path, "SELECT workload, error FROM trials").to_pylist()}
    assert errors["cpu.sqrt_mod"] is None
    assert errors["command"].startswith("worker 0 of node ")  # named by its agent, which waited for it
    # 0.3 s and the batch's two windows (of 30 ms each: 1.25 x 20 ms + 5 ms), less what the agent spent first.
    assert re.search(r"did not answer rounds 0\.\.1 within 0\.3[56]\d* s \(1 of the node's 1\); it is alive",
                     errors["command"]), errors["command"]
