"""What git says about the commits runs measured: their first-parent order and the commits between two.

Asked of one repository (``history --repo``, default the current folder) when it is a git
checkout; every answer is None where git, the repository or a commit is missing, and the
history falls back to time order and an unknown bisect range.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

GIT_TIMEOUT_S = 20.0
"""Longest a git call may take (a first-parent walk of a large repository)."""


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], check=False, capture_output=True, text=True,
                             timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


class Repository:
    """A git repository asked about commits; answers are cached for one history."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._first_parent: dict[str, int] | None = None

    @property
    def available(self) -> bool:
        """Return whether the path is inside a git checkout that git can read."""
        return _git(self.path, "rev-parse", "--git-dir") is not None

    def first_parent_rank(self, commits: Iterable[str]) -> dict[str, int]:
        """Return each of ``commits`` (full or abbreviated) that lies on HEAD's first-parent line with its
        position, oldest first; commits elsewhere (other branches, unknown) are left out.
        """
        if self._first_parent is None:
            listed = _git(self.path, "rev-list", "--first-parent", "--reverse", "HEAD")
            self._first_parent = {sha: i for i, sha in enumerate((listed or "").split())}
        out = {}
        for commit in set(commits):
            full = self._full(commit)
            if full in self._first_parent:
                out[commit] = self._first_parent[full]
        return out

    def _full(self, commit: str) -> str | None:
        if self._first_parent and commit in self._first_parent:
            return commit
        return _resolve(self.path, commit)

    def between(self, good: str, bad: str) -> int | None:
        """Return how many commits ``bad`` has that ``good`` lacks, less ``bad`` itself: those never
        benchmarked between them (``git bisect`` tests these); None when git cannot tell.
        """
        return _between(self.path, good, bad)


@lru_cache(maxsize=4096)
def _resolve(repo: Path, commit: str) -> str | None:
    out = _git(repo, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    return out.strip() if out else None


@lru_cache(maxsize=4096)
def _between(repo: Path, good: str, bad: str) -> int | None:
    out = _git(repo, "rev-list", "--count", f"{good}..{bad}")
    try:
        return max(int(out.strip()) - 1, 0) if out else None
    except ValueError:
        return None
