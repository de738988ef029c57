"""Tests of workloads/kernels.py: lazy numba, the cache-folder fallback, compilation, core clock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from itertools import pairwise
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


# ------------------------------------------------------------------------------------------
# STREAM loop codings, the chase's hop count, the compiler facts (issue 22)
# ------------------------------------------------------------------------------------------

STREAM_NAMES = ("stream_copy", "stream_scale", "stream_add", "stream_triad")


def _stream_call(kernels, name, arrays, variant, parts):
    """Run one STREAM kernel on (a, b, c) with STREAM's argument order; parts > 0: the _par one."""
    a, b, c = arrays
    args = {"stream_copy": (a, c), "stream_scale": (b, c, 0.75), "stream_add": (a, b, c),
            "stream_triad": (a, b, c, 0.75)}[name]
    if parts:
        getattr(kernels, f"{name}_par")(*args, variant, parts)
    else:
        getattr(kernels, name)(*args, variant)


@pytest.mark.parametrize("parts", [0, 1, 2, 3])
def test_stream_variants_compute_the_same_arrays(parts):
    from workloads.kernels import STREAM_VARIANTS

    names = STREAM_NAMES + tuple(f"{n}_par" for n in STREAM_NAMES)
    kernels, _ = compiled(*names)
    rng = np.random.default_rng(3)
    for size in (0, 1, 7, 8, 9, 31, 1003):
        for offset in range(8):  # every start within a cache line: the head and tail paths
            base = [rng.standard_normal(size + offset)[offset:] for _ in range(3)]
            results = {}
            for variant in STREAM_VARIANTS:
                arrays = [x.copy() for x in base]
                views = [np.empty(size + 8)[offset:offset + size] for _ in range(3)]
                for view, x in zip(views, arrays):
                    view[:] = x  # the same misalignment as base, in fresh memory
                for name in STREAM_NAMES:
                    _stream_call(kernels, name, views, STREAM_VARIANTS.index(variant), parts)
                results[variant] = views
            for variant in ("vector", "nt"):
                for got, want in zip(results[variant], results["loop"]):
                    assert np.array_equal(got, want), (variant, size, offset, parts)
            a, b, c = base
            c = a.copy()
            b = 0.75 * c
            c = a + b
            a = b + 0.75 * c
            assert all(np.array_equal(x, y) for x, y in zip(results["nt"], (a, b, c)))


def test_line_part_cuts_whole_lines_and_covers_every_index_once():
    kernels, _ = compiled("fill")  # imports the module, where line_part lives
    for size in (0, 5, 8, 100, 1003):
        for offset in range(8):
            x = np.empty(size + 8)[offset:offset + size]
            for parts in (1, 2, 3, 7):
                cuts = [kernels.line_part(x, parts, t) for t in range(parts)]
                assert cuts[0][0] == 0 and cuts[-1][1] == size
                assert all(hi == lo for (_, hi), (lo, _) in pairwise(cuts))  # contiguous
                for lo, _ in cuts[1:]:
                    assert lo == size or (x.ctypes.data + 8 * lo) % 64 == 0  # a line boundary


def _nocache_asm(tmp_path, name: str) -> str:
    """Return the assembly numba emits for kernel ``name``, compiled afresh (not from the cache)."""
    code = (f"from workloads.kernels import compiled\nk, _ = compiled({name!r})\n"
            f"f = k.{name}\nprint(f.inspect_asm(f.signatures[0]))\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=REPO, check=True)
    return run.stdout


def test_nt_variant_compiles_to_streaming_stores_and_a_fence(tmp_path):
    from workloads.kernels import compiler_facts

    facts = compiler_facts()
    if not (facts["triple"].startswith("x86_64") and "avx" in facts["cpu_features"]):
        pytest.skip("the assembly checked is x86-64 with AVX")
    asm = _nocache_asm(tmp_path, "stream_triad")
    assert "vmovntpd\t%ymm" in asm  # the nt branch: 32-byte streaming stores
    assert "sfence" in asm  # ... fenced before the kernel returns
    assert "vmovapd\t%ymm" in asm  # the vector branch: aligned 32-byte stores


def test_chase_does_exactly_the_hops_asked():
    kernels, _ = compiled("chase", "chase_timed")
    lines = 1000
    successor = np.random.default_rng(5).permutation(lines)  # any permutation: the walk is exact
    buf = np.zeros(lines * 8, dtype=np.int64)
    base = buf.ctypes.data
    buf[::8] = base + successor * 64

    def walk(line: int, hops: int) -> int:
        for _ in range(hops):
            line = int(successor[line])
        return line

    for hops in (0, 1, 7, 8, 9, 15, 16, 17, 999, 1234):  # around the 8-fold unrolled loop
        assert kernels.chase(base, hops) == base + 64 * walk(0, hops), hops
    end, elapsed_ns = kernels.chase_timed(base, 13, 1234)
    assert end == base + 64 * walk(0, 13 + 1234)
    assert elapsed_ns > 0


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
