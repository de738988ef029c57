"""Core-to-core latency matrices (``cpu.c2c``) summarized by the L3 domains their CPU pairs span."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def c2c_domain_medians(matrix: Mapping[tuple[int, int], float], domains: Sequence[tuple[str, tuple[int, ...]]],
                       ) -> tuple[tuple[float, int] | None, tuple[float, int] | None]:
    """Return (median ns, pairs) of the pairs within one L3 domain and of those across two; None where none.

    ``domains`` are (label, CPUs); only labels starting with "L3" count.
    """
    of = {c: label for label, cs in domains if label.startswith("L3") for c in cs}
    same = [v for (a, b), v in matrix.items() if a in of and of.get(a) == of.get(b)]
    cross = [v for (a, b), v in matrix.items() if a in of and b in of and of[a] != of[b]]
    return ((float(np.median(same)), len(same)) if same else None,
            (float(np.median(cross)), len(cross)) if cross else None)
