"""What each node's agent is sent to start its workers: its own node's slots, never the whole trial."""

from __future__ import annotations

from dataclasses import replace

from ray import cloudpickle

from orchestrator.pipeline.trial import by_node, per_node_trials
from orchestrator.records import Shape, Trial, WorkerSlot


def _trial(nodes: int, workers: int = 2) -> Trial:
    slots = tuple(WorkerSlot(n * workers + w, f"{n:056x}", (w,), True) for n in range(nodes) for w in range(workers))
    return Trial("cpu.sqrt_mod-0123456789", "cpu.sqrt_mod", {"elements": 256}, Shape(workers=workers), slots)


def test_each_agent_gets_its_nodes_slots_in_node_order_and_the_rest_of_the_trial_unchanged():
    trial = _trial(3)
    parts = per_node_trials(trial, by_node(trial))
    assert [p.node_ids for p in parts] == [(n,) for n in trial.node_ids]
    assert [s.rank for p in parts for s in p.slots] == [s.rank for s in trial.slots]
    assert all(replace(p, slots=trial.slots) == trial for p in parts)


def test_what_an_agent_is_sent_does_not_grow_with_the_number_of_nodes():
    # The whole trial to every agent was O(N^2) bytes a step: 77 kB per call at 1,000 nodes.
    def largest_call(nodes: int) -> int:
        trial = _trial(nodes)
        return max(len(cloudpickle.dumps(p)) for p in per_node_trials(trial, by_node(trial)))

    assert largest_call(1000) <= largest_call(3) + 16  # a few more digits in the ranks, no more
