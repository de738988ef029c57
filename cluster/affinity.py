"""Pin the whole current process (every thread, like ``taskset -a``) and read it back."""

from __future__ import annotations

import os


def pin_process(cpus: tuple[int, ...]) -> tuple[int, ...]:
    """Set the affinity of every thread of this process to ``cpus``; return the read-back set.

    Linux affinity is per thread: ``sched_setaffinity(0)`` would move only the calling
    thread, leaving a Ray worker's gRPC threads and any BLAS pool already started where
    they were. Threads created afterwards inherit the creator's mask. A thread that exits
    while we iterate is ignored.

    Raises:
        OSError: a CPU is outside this process's cgroup/allowed set (EINVAL).
    """
    wanted = set(cpus)
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), wanted)
        except ProcessLookupError:
            continue
    return tuple(sorted(os.sched_getaffinity(0)))
