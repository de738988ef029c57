"""How much the workers of a trial achieved together: per-round aggregate throughput and overlap."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa


@dataclass(frozen=True, slots=True)
class Concurrency:
    """How much the workers of a trial achieved together.

    Attributes:
        per_repetition: for each repetition measured by every worker, all workers' ops over
            the round's wall time, from the first start to the last end (ops/s).
        aggregate: all those ops over the rounds' total wall time (ops/s); NaN when none.
        overlap: the smallest, over workers, of the share of its measuring time during which
            every worker was running (0..1; 1 = the workers always ran together).
        repetitions: the repetition number of each ``per_repetition`` value.
    """

    per_repetition: np.ndarray
    aggregate: float
    overlap: float
    repetitions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def concurrent_throughput(subset: pa.Table) -> Concurrency:
    """Return the ``Concurrency`` of one metric's measured samples of one trial.

    Every worker starts repetition r at one shared instant with the same iteration count,
    so repetition r is a round of equal work; its throughput is the work of all workers
    over the round's makespan. Nothing assumes a worker's rate was uniform within its
    sample (it is not when workers share CPUs: the last ones speed up once others finish),
    and stragglers count against the round, as in any parallel step that waits for all.
    Gaps between rounds are never counted.
    """
    ranks = sorted(set(subset["worker_rank"].to_pylist()))
    reps = subset["repetition"].to_numpy()
    starts, ends = subset["start_ns"].to_numpy(), subset["end_ns"].to_numpy()
    ops = subset["ops"].to_numpy().astype(np.float64)
    rank_of = np.asarray(subset["worker_rank"].to_numpy())
    per_rep: list[float] = []
    kept: list[int] = []
    ops_total = wall_total = 0.0
    inside = dict.fromkeys(ranks, 0.0)
    duration = dict.fromkeys(ranks, 0.0)
    for rep in np.unique(reps):
        here = reps == rep
        if len(set(rank_of[here].tolist())) != len(ranks):
            continue  # not measured by every worker (a failed or partial batch)
        s, e = starts[here], ends[here]
        wall_ns = int(e.max() - s.min())
        if wall_ns <= 0:
            continue
        common_start, common_end = s.max(), e.min()
        for r in ranks:
            mine = rank_of[here] == r
            duration[r] += float((e[mine] - s[mine]).sum())
            inside[r] += float(np.clip(np.minimum(e[mine], common_end) - np.maximum(s[mine], common_start),
                                       0, None).sum())
        per_rep.append(float(ops[here].sum() / (wall_ns / 1e9)))
        kept.append(int(rep))
        ops_total += float(ops[here].sum())
        wall_total += wall_ns / 1e9
    overlap = min((inside[r] / duration[r] if duration[r] else 0.0) for r in ranks) if ranks else 0.0
    return Concurrency(np.array(per_rep), ops_total / wall_total if wall_total > 0 else float("nan"), overlap,
                       np.array(kept, dtype=np.int64))
