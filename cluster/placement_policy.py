"""Placement as the user writes it: a named policy or a likwid-style CPU expression, parsed once.

Pure and topology-free: whether the CPUs and domains exist is checked when a placement is
resolved against a node (``cluster.placement.plan_workers``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workloads.errors import UserError

POLICIES = ("compact", "spread", "cores", "largest-l3", "none")
MAX_CPU = 8191
"""Largest CPU number an expression may name (Linux's NR_CPUS tops out at 8192)."""
_DOMAIN_EXPR = re.compile(r"^([NSMC])(\d*):(.+)$")
DOMAIN_NAMES = {
    "N": "node",
    "S": "socket",
    "M": "NUMA memory domain",
    "C": "last-level-cache domain",
}


class PlacementError(UserError):
    """A placement that is malformed, or that this node's usable CPUs cannot satisfy."""


@dataclass(frozen=True, slots=True)
class ExpressionPart:
    """One ``@``-joined part of a CPU expression: OS CPUs (``domain`` None) or domain-relative ones."""

    domain: str | None
    """None for a plain OS CPU list; N (node), S (socket), M (NUMA domain) or C (L3 domain)."""
    index: int
    """The domain's number (0 for N and for plain lists)."""
    positions: tuple[int, ...]
    """OS CPU numbers, or positions in the domain's physical-cores-first order."""


@dataclass(frozen=True, slots=True)
class Placement:
    """A parsed placement: a named policy, or a likwid-style CPU expression (``parts``)."""

    text: str
    policy: str | None
    """One of POLICIES, or None for an expression."""
    parts: tuple[ExpressionPart, ...] = ()

    def __str__(self) -> str:
        return self.text

    @property
    def pinned(self) -> bool:
        """Whether workers are pinned at all (every placement but ``none``)."""
        return self.policy != "none"


def parse_placement(text: str) -> Placement:
    """Return the ``Placement`` that ``text`` names: a policy or a CPU expression.

    Expressions: ``0,2-5`` (OS CPUs), ``N:0-3``, ``S0:0-3``, ``M0:0-3``, ``C1:0-3``
    (domain-relative, physical cores first), joined with ``@``. Whether the CPUs and domains
    exist is checked later, against each node's topology.

    Raises:
        PlacementError: an unknown policy, a malformed list, a missing domain number, or a
            CPU number above MAX_CPU.
    """
    text = text.strip()
    if text in POLICIES:
        return Placement(text, text)
    if not _looks_like_expression(text):
        raise PlacementError(
            f"Unknown placement {text!r}; use one of {', '.join(POLICIES)} or a likwid-style "
            "CPU expression such as 0,2-5, N:0-3, S0:0-3, M0:0-3 or C1:0-3."
        )
    parts = []
    for part in text.split("@"):
        part = part.strip()
        match = _DOMAIN_EXPR.match(part)
        if match is None:
            parts.append(ExpressionPart(None, 0, _parse_indices(text, part)))
            continue
        letter, index_text, rest = match.groups()
        if letter == "N" and index_text not in ("", "0"):
            raise PlacementError(
                f"Placement {text!r} names node domain N{index_text}, but only N exists; use N:<list>."
            )
        if letter != "N" and index_text == "":
            raise PlacementError(
                f"Placement {text!r} needs a domain number after {letter}, e.g. {letter}0:0-3."
            )
        parts.append(ExpressionPart(letter, int(index_text or 0), _parse_indices(text, rest)))
    return Placement(text, None, tuple(parts))


COMPACT = parse_placement("compact")


def _looks_like_expression(text: str) -> bool:
    """Return True when `text` is meant as a CPU expression rather than a policy name."""
    return bool(text) and (text[0].isdigit() or bool(re.match(r"^[NSMC]\d*:", text)))


def _parse_indices(expr: str, text: str) -> tuple[int, ...]:
    """Parse "0,2-5" preserving order (ranges may descend); raise PlacementError if malformed."""
    out: list[int] = []
    for item in text.split(","):
        item = item.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not m:
            raise PlacementError(
                f"Placement {expr!r} has a malformed CPU list item {item!r}; write lists like "
                "0,2-5 or domain expressions like S0:0-3."
            )
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if max(lo, hi) > MAX_CPU:  # bound before building a range that would not fit in memory
            raise PlacementError(
                f"Placement {expr!r} names CPU {max(lo, hi)}, above the largest CPU number Linux "
                f"supports ({MAX_CPU}); list CPUs that exist (`topobench topology` shows them)."
            )
        out += list(range(lo, hi + 1)) if hi >= lo else list(range(lo, hi - 1, -1))
    return tuple(out)
