"""Which code a run measured: --commit, the command's checkout, the current folder, CI variables."""

from __future__ import annotations

import subprocess

import pytest

from orchestrator.pipeline.provenance import (
    check_commit,
    check_label,
    find_commit,
    program_folders,
)
from workloads.errors import UserError

GIT = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}


def checkout(path, monkeypatch):
    """Make ``path`` a git checkout with one commit; return its sha."""
    for k, v in GIT.items():
        monkeypatch.setenv(k, v)
    path.mkdir()
    (path / "prog.c").write_text("int main(void) { return 0; }\n")
    for args in (["init", "-q"], ["add", "prog.c"], ["commit", "-qm", "one"]):
        subprocess.run(["git", "-C", str(path), *args], check=True)
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_the_benchmarked_programs_checkout_comes_before_the_current_folder(tmp_path, monkeypatch):
    sha = checkout(tmp_path / "program", monkeypatch)
    monkeypatch.chdir(tmp_path)  # not a checkout
    monkeypatch.setenv("GITHUB_SHA", "C" * 40)
    folders = program_folders([("cpu.sqrt_mod", {}), ("command", {"cwd": str(tmp_path / "program")})])
    found = find_commit(None, folders)
    assert (found.sha, found.source, found.dirty) == (sha, f"command cwd {tmp_path / 'program'}", False)
    (tmp_path / "program" / "prog.c").write_text("int main(void) { return 1; }\n")
    assert find_commit(None, folders).dirty is True  # the commit no longer names the code alone
    assert find_commit("abc1234", folders).source == "--commit"
    assert find_commit(None, []) == find_commit(None, [str(tmp_path)])  # no checkout there: CI's variable
    assert (find_commit(None, []).sha, find_commit(None, []).source) == ("c" * 40, "GITHUB_SHA")
    monkeypatch.delenv("GITHUB_SHA")
    monkeypatch.delenv("CI_COMMIT_SHA", raising=False)
    assert find_commit(None, []).sha is None


def test_the_current_folder_is_the_fallback(tmp_path, monkeypatch):
    sha = checkout(tmp_path / "here", monkeypatch)
    monkeypatch.chdir(tmp_path / "here")
    assert (find_commit(None, []).sha, find_commit(None, []).source) == (sha, "current folder")


@pytest.mark.parametrize("text, fragment", [("main", "is not a commit id"), ("12", "is not a commit id")])
def test_a_commit_must_be_hex(text, fragment):
    with pytest.raises(UserError, match=fragment):
        check_commit(text)
    assert check_commit(" ABCDEF1 ") == "abcdef1" and check_commit(None) is None


@pytest.mark.parametrize("text", ["", "a,b", "two\nlines", "x" * 201])
def test_a_label_is_one_short_line_without_commas(text):
    with pytest.raises(UserError, match="must be one line of 1 to 200 characters without commas"):
        check_label(text)
    assert check_label(" v2 ") == "v2"
