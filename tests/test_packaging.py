"""The installed package: a wheel built from this tree holds every module, so `pip install .` works.

Editable installs and the tests run from the source tree, so a package missing from the build
configuration shows only in a real install (`topobench run` then fails with ModuleNotFoundError).
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setuptools_major() -> int:
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return 0


def test_the_wheel_holds_every_module_of_the_three_packages(tmp_path):
    # A copy of the tracked files, so the build leaves no build/ or egg-info in the checkout.
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip("\0").split("\0")
    for name in tracked:
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_bytes((ROOT / name).read_bytes())
    # The installed setuptools when there is one (fast, offline); else pip's isolated build fetches it.
    local = ["--no-build-isolation"] if _setuptools_major() >= 68 else []
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *local, "-q",
                            "-w", str(tmp_path / "dist"), str(tmp_path / "src")],
                           capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("topobench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {n for n in tracked if n.endswith(".py") and n.split("/")[0] in ("orchestrator", "workloads", "cluster")}
    assert sources and not sources - names, f"missing from the wheel: {sorted(sources - names)}"
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "topobench = orchestrator.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
