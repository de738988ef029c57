"""Tests of workloads/kernels.py: lazy numba, the cache-folder fallback, compilation, core clock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workloads.kernels import (
    CacheChoice,
    choose_cache_dir,
    compiled,
    core_clock_hz,
    fallback_cache_dirs,
)

REPO = Path(__file__).resolve().parent.parent


def test_workloads_import_without_numba():
    code = ("import sys, workloads, workloads.registry as r; r.load_workloads(); "
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_cache_choice_keeps_numba_default_when_writable(tmp_path):
    assert choose_cache_dir(tmp_path, env={}) == CacheChoice(True, None)
    assert (tmp_path / "__pycache__").is_dir()
    # A user's NUMBA_CACHE_DIR wins even where the source folder is not writable.
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert choose_cache_dir(blocked, env={"NUMBA_CACHE_DIR": "/x"}) == CacheChoice(True, None)


def test_cache_choice_falls_back_in_order(tmp_path):
    blocked = tmp_path / "file"  # nothing can be created under a regular file, not even by root
    blocked.write_text("")
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "TMPDIR": str(tmp_path / "tmp")}
    assert fallback_cache_dirs(env) == (tmp_path / "xdg/topobench/numba",
                                        tmp_path / f"tmp/topobench-numba-{os.getuid()}")
    assert choose_cache_dir(blocked, env) == CacheChoice(True, tmp_path / "xdg/topobench/numba")
    env["XDG_CACHE_HOME"] = str(blocked)
    assert choose_cache_dir(blocked, env).folder == tmp_path / f"tmp/topobench-numba-{os.getuid()}"
    env = {"HOME": str(tmp_path / "home"), "TMPDIR": str(blocked)}
    assert choose_cache_dir(blocked, env).folder == tmp_path / "home/.cache/topobench/numba"
    env["HOME"] = str(blocked)
    assert choose_cache_dir(blocked, env) == CacheChoice(False, None)


CHILD = """
import numpy as np, workloads
from workloads.kernels import compiled
kernels, seconds = compiled("chase")
a = np.zeros(16, dtype=np.int64)
a[0] = a.ctypes.data + 64
a[8] = a.ctypes.data
assert kernels.chase(a.ctypes.data, 3) == a.ctypes.data + 64
from numba.core import config
assert config.CACHE_DIR == "", config.CACHE_DIR  # restored: other numba users unaffected
print(workloads.__file__)
print(kernels.chase.stats.cache_path)
print(sum(kernels.chase.stats.cache_hits.values()))
"""


def _read_only_runner(pkg: Path) -> list[str] | None:
    """Return a command prefix that runs a child with ``pkg`` read-only, or None if impossible."""
    if os.geteuid() != 0:
        for path in (pkg, *pkg.rglob("*")):
            path.chmod(path.stat().st_mode & ~0o222)
        return []
    unshare = shutil.which("unshare")
    # root ignores permissions: make the folder a read-only bind mount in a private namespace.
    prefix = [unshare, "--mount", "sh", "-c",
              f'mount --bind -o ro "{pkg}" "{pkg}" && exec "$0" "$@"'] if unshare else None
    if prefix is None or subprocess.run([*prefix, "true"], capture_output=True,
                                                 check=False).returncode:
        return None
    return prefix


def test_cache_lands_in_fallback_when_package_is_read_only(tmp_path):
    pkg = tmp_path / "site"
    shutil.copytree(REPO / "workloads", pkg / "workloads",
                    ignore=shutil.ignore_patterns("__pycache__"))
    prefix = _read_only_runner(pkg)
    if prefix is None:
        pytest.skip("cannot make a read-only folder here (root without mount namespaces)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(PYTHONPATH=str(pkg), XDG_CACHE_HOME=str(tmp_path / "cache"),
               HOME=str(tmp_path / "home"))
    try:
        runs = [subprocess.run([*prefix, sys.executable, "-c", CHILD], capture_output=True,
                               text=True, env=env, cwd=tmp_path, check=False) for _ in range(2)]
    finally:
        for path in (pkg, *pkg.rglob("*")):
            path.chmod(path.stat().st_mode | 0o200)
    for run in runs:
        assert run.returncode == 0, run.stderr
    source, cache_path, hits = runs[0].stdout.split()
    assert Path(source).parent == pkg / "workloads"  # the copy, not the repository
    fallback = tmp_path / "cache" / "topobench" / "numba"
    assert Path(cache_path).parent == fallback
    assert list(Path(cache_path).glob("kernels_numba.chase-*.nbi"))
    assert not (pkg / "workloads" / "__pycache__").exists()
    assert (hits, runs[1].stdout.split()[2]) == ("0", "1")  # compiled, then loaded from cache


def test_compiled_kernels_refuse_other_types_and_do_not_recompile():
    kernels, _ = compiled("chase", "max_relative_error")
    with pytest.raises(TypeError):
        kernels.max_relative_error(np.zeros(3, dtype=np.int32), 2.0)  # would need a compile
    a = np.zeros(8, dtype=np.int64)
    a[0] = a.ctypes.data
    assert kernels.chase(a.ctypes.data, 10) == a.ctypes.data  # a Python int fits int64
    assert len(kernels.chase.signatures) == 1 and len(kernels.max_relative_error.signatures) == 1
    _, again = compiled("chase")
    assert again < 0.05
    x = np.full(10, 2.0)
    assert kernels.max_relative_error(x, 2.0) == 0.0
    x[3] = 2.5
    assert kernels.max_relative_error(x, 2.0) == 0.25
    x[4] = np.nan
    assert kernels.max_relative_error(x, 2.0) == np.inf
    assert kernels.max_relative_error(np.zeros(0), 2.0) == 0.0


def test_core_clock_is_plausible():
    kernels, _ = compiled("clock_chain")
    if not kernels.chain_supported():
        assert core_clock_hz(kernels) is None
        return
    assert kernels.clock_chain(3) == 3 * kernels.CHAIN_ADDS  # the chain really adds
    hz = core_clock_hz(kernels)
    assert 2e8 < hz < 8e9


def test_compiler_facts_are_present_and_well_formed():
    import json
    import re
    from importlib.metadata import version

    import llvmlite.binding as llvm
    from numba.core.registry import cpu_target

    from workloads.kernels import compiler_facts

    facts = compiler_facts()
    assert set(facts) == {"numba", "llvmlite", "llvm", "triple", "cpu_name", "cpu_features",
                          "opt_level"}
    assert facts["numba"] == version("numba") and facts["llvmlite"] == version("llvmlite")
    assert re.fullmatch(r"\d+\.\d+\.\d+", facts["llvm"])
    assert facts["llvm"].split(".")[0] == str(llvm.llvm_version_info[0])
    triple, cpu_name, features = cpu_target.target_context.codegen().magic_tuple()
    assert (facts["triple"], facts["cpu_name"]) == (triple, cpu_name) and cpu_name
    enabled = facts["cpu_features"]
    assert enabled == sorted(enabled) and all(re.fullmatch(r"[0-9a-z_.\-]+", f) for f in enabled)
    assert {f"+{f}" for f in enabled} == {f for f in features.split(",") if f.startswith("+")}
    if triple.startswith("x86_64"):
        assert "sse2" in enabled
    assert facts["opt_level"] in (0, 1, 2, 3)
    assert json.loads(json.dumps(facts)) == facts  # stored as JSON in nodes.compiler
