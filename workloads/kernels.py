"""numba kernels on demand: a writable cache folder, compilation in setup, threads, core clock.

numba is imported only inside these functions (first call), never when ``workloads`` is
imported, so ``topobench workloads`` and ``--help`` stay fast. The kernels live in
``workloads/kernels_numba.py`` and are jitted with ``cache=True``.

Where numba caches: its locators (numba/core/caching.py) try, in order, ``NUMBA_CACHE_DIR``
(``numba.config.CACHE_DIR``, read when a jitted function is decorated, so setting the
attribute after ``import numba`` works), ``__pycache__`` beside the source file, then
``~/.cache/numba``; a function no locator can write for fails to decorate. topobench
keeps numba's choice when ``NUMBA_CACHE_DIR`` is set or ``__pycache__`` beside the kernels
is writable; otherwise (site-packages read-only) it points numba at the first writable of
``$XDG_CACHE_HOME/topobench/numba`` (``~/.cache/topobench/numba``) and
``$TMPDIR/topobench-numba-<uid>`` while the kernels module is decorated, then restores
``CACHE_DIR`` so other numba users in the process are not affected; with none writable
the kernels compile uncached.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from workloads.errors import UserError

KERNELS_MODULE = "workloads.kernels_numba"
SOURCE_DIR = Path(__file__).resolve().parent

STREAM_VARIANTS: tuple[str, ...] = ("loop", "vector", "nt")
"""How memory.stream's loops are coded; a kernel takes the index as its ``variant`` argument:
loop (numba's compilation of the Python loop), vector (a 32-byte vector loop written in LLVM
IR), nt (the same with non-temporal stores). See ``workloads/kernels_numba.py``."""

# numba signatures of the kernels, by name in workloads/kernels_numba.py.
_ARRAY = "float64[::1]"
SIGNATURES: dict[str, str] = {
    "stream_copy": f"void({_ARRAY}, {_ARRAY}, int64)",
    "stream_scale": f"void({_ARRAY}, {_ARRAY}, float64, int64)",
    "stream_add": f"void({_ARRAY}, {_ARRAY}, {_ARRAY}, int64)",
    "stream_triad": f"void({_ARRAY}, {_ARRAY}, {_ARRAY}, float64, int64)",
    "stream_copy_par": f"void({_ARRAY}, {_ARRAY}, int64, int64)",
    "stream_scale_par": f"void({_ARRAY}, {_ARRAY}, float64, int64, int64)",
    "stream_add_par": f"void({_ARRAY}, {_ARRAY}, {_ARRAY}, int64, int64)",
    "stream_triad_par": f"void({_ARRAY}, {_ARRAY}, {_ARRAY}, float64, int64, int64)",
    "fill": f"void({_ARRAY}, float64)",
    "fill_par": f"void({_ARRAY}, float64, int64, int64)",
    "max_relative_error": f"float64({_ARRAY}, float64)",
    "chase": "int64(int64, int64)",
    "chase_timed": "UniTuple(int64, 2)(int64, int64, int64)",
    "sattolo_swaps": "void(int64[::1], int64[::1])",
    "clock_chain": "int64(int64)",
    "ping": "int64(int64, int64, int64, int64[::1])",
    "pong": "int64(int64, int64)",
}


@dataclass(frozen=True, slots=True)
class CacheChoice:
    """Where the kernels are cached: ``folder`` (None: numba's own choice), or not at all."""

    enabled: bool
    folder: Path | None


def _writable(folder: Path) -> bool:
    """Return whether ``folder`` exists or can be made, and takes a new file (numba's own test)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def fallback_cache_dirs(env: Mapping[str, str] = os.environ) -> tuple[Path, ...]:
    """Return the per-user folders tried, in order, when the kernels cannot cache beside their source."""
    xdg = env.get("XDG_CACHE_HOME")
    home = env.get("HOME") or os.path.expanduser("~")
    user = Path(xdg) if xdg else Path(home) / ".cache"
    tmp = env.get("TMPDIR") or tempfile.gettempdir()
    return (user / "topobench" / "numba", Path(tmp) / f"topobench-numba-{os.getuid()}")


def choose_cache_dir(source_dir: Path = SOURCE_DIR,
                     env: Mapping[str, str] = os.environ) -> CacheChoice:
    """Return where numba should cache kernels whose source is in ``source_dir`` (see module doc)."""
    if env.get("NUMBA_CACHE_DIR") or _writable(source_dir / "__pycache__"):
        return CacheChoice(True, None)
    for folder in fallback_cache_dirs(env):
        if _writable(folder):
            return CacheChoice(True, folder)
    return CacheChoice(False, None)


_choice: CacheChoice | None = None


def caching_enabled() -> bool:
    """Point numba's CACHE_DIR at the chosen folder (first call) and return whether kernels cache.

    Called by ``workloads.kernels_numba`` before it decorates its kernels.
    """
    global _choice
    if _choice is None:
        _choice = choose_cache_dir()
    if _choice.folder is not None:
        from numba.core import config

        config.CACHE_DIR = str(_choice.folder)
    return _choice.enabled


def numba_kernels() -> ModuleType:
    """Return ``workloads.kernels_numba``, importing numba and it on the first call."""
    import importlib
    import sys

    if KERNELS_MODULE in sys.modules:
        return sys.modules[KERNELS_MODULE]
    from numba.core import config

    before = config.CACHE_DIR
    try:
        return importlib.import_module(KERNELS_MODULE)
    finally:
        config.CACHE_DIR = before  # the kernels' cache locators are fixed at decoration


_compiled: set[str] = set()


def compiled(*names: str) -> tuple[ModuleType, float]:
    """Import the kernels and compile (or load from cache) ``names``; return (module, seconds).

    The seconds cover numba's import on the first call, then each kernel's compilation
    or cache load for its ``SIGNATURES`` entry: what a workload's setup spends on kernels.
    A compiled kernel refuses other argument types, so nothing compiles inside ``run``.
    """
    t0 = time.perf_counter()
    kernels = numba_kernels()
    for name in names:
        if name not in _compiled:
            dispatcher = getattr(kernels, name)
            dispatcher.compile(SIGNATURES[name])
            dispatcher.disable_compile()  # a call with other types fails instead of compiling
            _compiled.add(name)
    return kernels, time.perf_counter() - t0


def compiler_facts() -> dict[str, Any] | None:
    """Return what numba compiles the kernels with; None when numba cannot be imported.

    Keys: numba, llvmlite and llvm (versions), triple, cpu_name (e.g. "znver4") and
    cpu_features (the enabled ones, sorted: "avx2", "avx512f", ...) of the target numba's JIT
    compiles for (its codegen's ``magic_tuple``, which also keys numba's cache, so
    NUMBA_CPU_NAME and NUMBA_CPU_FEATURES show here), and opt_level (NUMBA_OPT). Recorded
    per node as pyperf records its environment; importing numba costs about 0.2-0.5 s.
    """
    try:
        import llvmlite
        import llvmlite.binding as llvm
        import numba
        from numba.core import config
        from numba.core.registry import cpu_target
    except ImportError:
        return None
    triple, cpu_name, features = cpu_target.target_context.codegen().magic_tuple()
    return {
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "llvm": ".".join(map(str, llvm.llvm_version_info)),
        "triple": triple,
        "cpu_name": cpu_name,
        "cpu_features": sorted(f[1:] for f in features.split(",") if f.startswith("+")),
        "opt_level": int(config.OPT),
    }


def set_threads(count: int) -> int:
    """Set numba's parallel thread count for the calling thread; return the previous count.

    Raises:
        UserError: ``count`` exceeds the threads numba started with (NUMBA_NUM_THREADS).
    """
    import numba

    most = numba.config.NUMBA_NUM_THREADS
    if count > most:
        raise UserError(f"--threads-per-worker {count} exceeds the {most} threads numba started "
                        f"with; set NUMBA_NUM_THREADS={count} or give at most {most}.")
    previous = numba.get_num_threads()
    numba.set_num_threads(count)
    return previous


CLOCK_ITERATIONS = 20_000  # x 64 adds: ~0.3 ms at 4 GHz per try
CLOCK_TRIES = 7


def core_clock_hz(kernels: ModuleType) -> float | None:
    """Return the calling CPU's core clock in Hz, timed on a chain of dependent adds; None if unknown.

    Method of lmbench's ``mhz`` (McVoy & Staelin 1996): an add's latency is one cycle, so
    ``CHAIN_ADDS`` dependent adds take that many cycles; the fastest of CLOCK_TRIES tries
    is kept (a preempted try only looks slower). None on machines without the assembly
    form (not x86-64 or AArch64). ``clock_chain`` must be compiled.
    """
    if not kernels.chain_supported():
        return None
    best = float("inf")
    for _ in range(CLOCK_TRIES):
        t0 = time.perf_counter_ns()
        kernels.clock_chain(CLOCK_ITERATIONS)
        best = min(best, time.perf_counter_ns() - t0)
    return CLOCK_ITERATIONS * kernels.CHAIN_ADDS / best * 1e9 if best > 0 else None
