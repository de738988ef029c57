"""Which code a run measured: the commit of the benchmarked program, found once when the run opens.

In order: ``--commit`` as given; the git checkout of a ``command`` workload's ``cwd`` (the
program benchmarked); the checkout of the current folder; ``GITHUB_SHA`` or ``CI_COMMIT_SHA``
(CI checkouts without git metadata). A checkout with uncommitted changes is marked dirty: its
commit alone does not name the code, so a history prior never takes such runs.

Later, ``history`` asks one repository (``--repo``, default the current folder) about the
commits runs measured (``Repository``): their first-parent order and how many commits between
two were never benchmarked. Every answer is None where git, the repository or a commit is
missing; the history then falls back to time order and an unknown bisect range.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from workloads.errors import UserError

CI_VARIABLES = ("GITHUB_SHA", "CI_COMMIT_SHA")
"""Environment variables CI systems set to the commit being built (GitHub Actions, GitLab CI)."""

_SHA = re.compile(r"^[0-9a-fA-F]{4,64}$")
_LABEL_MAX = 200


@dataclass(frozen=True, slots=True)
class Labels:
    """What a user says a run measured: ``--label`` and ``--commit`` (both checked, None when not given)."""

    label: str | None = None
    commit: str | None = None


NO_LABELS = Labels()
"""A run the user named nothing: its commit is found (``find_commit``), it has no label."""

def program_folders(workloads_params: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """Return the ``cwd`` of each ``command`` workload among (workload, params), in order."""
    return [str(p["cwd"]) for name, p in workloads_params if name == "command" and p.get("cwd")]


@dataclass(frozen=True, slots=True)
class Commit:
    """The commit a run measured and how it was found."""

    sha: str | None
    source: str | None
    """--commit | command cwd <folder> | current folder | GITHUB_SHA | CI_COMMIT_SHA; None when unknown."""
    dirty: bool | None = None
    """The checkout had uncommitted changes (None: not a checkout, or not known)."""


def check_commit(text: str | None) -> str | None:
    """Return ``--commit`` lower-cased, or None; refuse what is not a hex commit id.

    Raises:
        UserError: not 4-64 hexadecimal digits.
    """
    if text is None:
        return None
    if not _SHA.match(text.strip()):
        raise UserError(f"--commit {text!r} is not a commit id; give its hexadecimal SHA (4 to 64 digits), "
                        "e.g. --commit $(git rev-parse HEAD).")
    return text.strip().lower()


def check_label(text: str | None) -> str | None:
    """Return ``--label`` stripped, or None; refuse an empty, multi-line or overlong one.

    Raises:
        UserError: empty, with a line break or a comma (it separates selectors), or over 200 characters.
    """
    if text is None:
        return None
    label = text.strip()
    if not label or "\n" in label or "," in label or len(label) > _LABEL_MAX:
        raise UserError(f"--label {text!r} must be one line of 1 to {_LABEL_MAX} characters without commas, "
                        "e.g. --label v2; `compare label:v2 ...` selects such runs.")
    return label


GIT_TIMEOUT_S = 5.0
"""Longest a git call may take; a first-parent walk of a large repository gets ``WALK_TIMEOUT_S``."""
WALK_TIMEOUT_S = 20.0


def _git(folder: Path, *args: str, timeout: float = GIT_TIMEOUT_S) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(folder), *args], check=False, capture_output=True, text=True,
                             timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def checkout_commit(folder: Path) -> tuple[str, bool] | None:
    """Return (HEAD's commit, dirty) of the git checkout holding ``folder``; None when it is not one."""
    sha = _git(folder, "rev-parse", "HEAD")
    if not sha:
        return None
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return sha, bool(status) if status is not None else True


def find_commit(explicit: str | None, program_folders: Iterable[str]) -> Commit:
    """Return the commit of the code a run measures (module docstring for the order)."""
    if explicit:
        return Commit(explicit, "--commit")
    for folder in program_folders:
        found = checkout_commit(Path(folder))
        if found:
            return Commit(found[0], f"command cwd {folder}", found[1])
    found = checkout_commit(Path.cwd())
    if found:
        return Commit(found[0], "current folder", found[1])
    for name in CI_VARIABLES:
        if os.environ.get(name, "").strip():
            return Commit(os.environ[name].strip().lower(), name)
    return NO_COMMIT


NO_COMMIT = Commit(None, None)
"""The commit of a run whose code is not known."""


class Repository:
    """A git repository asked about the commits runs measured; answers are cached for one history."""

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
            listed = _git(self.path, "rev-list", "--first-parent", "--reverse", "HEAD", timeout=WALK_TIMEOUT_S)
            self._first_parent = {sha: i for i, sha in enumerate((listed or "").split())}
        out = {}
        for commit in set(commits):
            full = commit if commit in self._first_parent else _resolve(self.path, commit)
            if full in self._first_parent:
                out[commit] = self._first_parent[full]
        return out

    def between(self, good: str, bad: str) -> int | None:
        """Return how many commits ``bad`` has that ``good`` lacks, less ``bad`` itself: those never
        benchmarked between them (``git bisect`` tests these); None when git cannot tell.
        """
        return _between(self.path, good, bad)


@lru_cache(maxsize=4096)
def _resolve(repo: Path, commit: str) -> str | None:
    return _git(repo, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}") or None


@lru_cache(maxsize=4096)
def _between(repo: Path, good: str, bad: str) -> int | None:
    out = _git(repo, "rev-list", "--count", f"{good}..{bad}", timeout=WALK_TIMEOUT_S)
    try:
        return max(int(out) - 1, 0) if out else None
    except ValueError:
        return None
