"""What an open-loop sample says about backlog: does latency from the intended time grow?

At an offered rate λ a system that completes only μ < λ requests per second serves request i
(due at t = i/λ) at i/μ, so latency counted from the intended send time grows by λ/μ − 1
seconds per second of schedule: the served rate is λ / (1 + slope). Measuring the slope, rather than completions per wall second,
keeps the last requests' drain out of the figure: a short sample of a system that keeps up
reads ~0, not "1% short" (the drain of one request over a 100 ms sample).
"""

from __future__ import annotations

import math

import numpy as np

from workloads.base import Metric

BACKLOG = Metric(
    "backlog_growth", "fraction",
    "open loop: growth of latency per second of schedule (median of the last eighth minus the "
    "first, over the time between them); a system serving mu of an offered lambda reads "
    "lambda/mu - 1", better="lower")


def backlog_growth(latency_ns: np.ndarray, rate_per_s: float) -> float:
    """Return the growth of latency per unit schedule time of requests due ``i / rate`` apart.

    ``latency_ns`` is in the order the requests were due. The medians of the first and last
    eighth resist single stalls. NaN with fewer than 16 requests.
    """
    n = len(latency_ns)
    if n < 16 or not rate_per_s > 0:
        return math.nan
    k = n // 8
    first, last = np.median(latency_ns[:k]), np.median(latency_ns[-k:])
    span_ns = (n - k) * 1e9 / rate_per_s  # between the eighths' midpoints
    return float((last - first) / span_ns)
