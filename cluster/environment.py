"""Capture the facts of a node that decide how far its results can be trusted.

Reads procfs/sysfs and psutil; every field that a machine does not expose is None,
never an exception.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

import psutil

_IMPORTANT_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "amx_tile", "asimd", "sve")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cpuinfo(root: Path) -> tuple[str | None, list[str]]:
    text = _read(root / "proc/cpuinfo") or ""
    model, flags = None, []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if model is None and key in ("model name", "Model", "cpu model"):
            model = value.strip()
        elif not flags and key in ("flags", "Features"):
            flags = value.split()
    return model, [f for f in _IMPORTANT_FLAGS if f in flags]


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("numpy", "ray", "pyarrow"):
        module = sys.modules.get(name)
        out[name] = getattr(module, "__version__", None) if module else None
    try:
        from threadpoolctl import threadpool_info

        out["blas"] = ", ".join(
            f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"
        ) or None
    except Exception:  # threadpoolctl inspects native libraries; never fail a probe on it
        out["blas"] = None
    return out


def capture_environment(root: str | Path = "/") -> dict[str, Any]:
    """Return this node's environment: CPU model/flags, kernel, memory, governor, load, versions.

    Keys: hostname, cpu_model, cpu_flags (the SIMD flags among SSE4.2/AVX/AVX2/FMA/AVX-512/
    AMX/NEON/SVE present), kernel, memory_total_bytes, memory_available_bytes, governor
    (of cpu0's cpufreq policy, None without cpufreq), boost (None/True/False from
    ``cpufreq/boost``), smt_active, load_avg_1m, and versions (python, numpy, ray, pyarrow,
    blas).
    """
    root = Path(root)
    model, flags = _cpuinfo(root)
    cpu_sys = root / "sys/devices/system/cpu"
    boost = _read(cpu_sys / "cpufreq/boost")
    smt = _read(cpu_sys / "smt/active")
    memory = psutil.virtual_memory()
    return {
        "hostname": socket.gethostname(),
        "cpu_model": model,
        "cpu_flags": flags,
        "kernel": platform.release(),
        "memory_total_bytes": int(memory.total),
        "memory_available_bytes": int(memory.available),
        "governor": _read(cpu_sys / "cpu0/cpufreq/scaling_governor"),
        "boost": None if boost is None else boost == "1",
        "smt_active": None if smt is None else smt == "1",
        "load_avg_1m": os.getloadavg()[0],
        "versions": _versions(),
    }
