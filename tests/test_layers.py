"""The package's import structure: layers point one way and chains stay short.

Read from the source with ``ast`` (nothing is imported). Rules:
- no command imports another command (shared options and the error wrapper are not commands);
- ``analysis/`` and ``render/`` never import ``pipeline/`` (they are fed its records);
- ``cluster/`` and ``workloads/`` never import ``orchestrator/``; ``workloads/`` never imports
  ``cluster/`` or Ray;
- SQL over the results dataset is written only in ``store/`` (no SQL string elsewhere in the orchestrator);
- the longest chain of module-level imports of the project's own modules is at most 7.
An import under ``if TYPE_CHECKING:`` is an annotation, not a dependency, and is left out of
every rule; imports inside functions count for the layer rules, not for the chain length
(they are how the CLI defers heavy modules, and a deferred module loads only when called).
"""

from __future__ import annotations

import ast
import functools
import itertools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestrator", "workloads", "cluster")
MAX_CHAIN = 7


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _imports(path: Path, deferred: bool) -> set[str]:
    """Return the project modules ``path`` imports: at module level, plus inside functions if ``deferred``."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                if node.module.split(".")[0] in PACKAGES:
                    found.add(node.module)
                    found.update(f"{node.module}.{a.name}" for a in node.names
                                 if f"{node.module}.{a.name}" in MODULES)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if deferred:
                    visit(node.body)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    if isinstance(getattr(node, field, None), list):
                        visit(getattr(node, field))

    visit(ast.parse(path.read_text()).body)
    return {m for m in found if m in MODULES}


ALL_IMPORTS = {name: _imports(path, deferred=True) for name, path in MODULES.items()}
TOP_IMPORTS = {name: _imports(path, deferred=False) - {name} for name, path in MODULES.items()}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(importer: str, imported: str) -> list[tuple[str, str]]:
    return [(a, b) for a, targets in ALL_IMPORTS.items() if _in(a, importer) for b in targets if _in(b, imported)]


def test_the_package_was_found():
    assert "orchestrator.pipeline.session" in MODULES and "cluster.topology" in MODULES and len(MODULES) > 60


def test_no_command_imports_another():
    shared = {"orchestrator.commands", "orchestrator.commands.options", "orchestrator.commands.errors"}
    bad = [(a, b) for a, b in _violations("orchestrator.commands", "orchestrator.commands")
           if a != b and b not in shared and a not in shared]
    assert not bad


@pytest.mark.parametrize("lower", ["orchestrator.analysis", "orchestrator.render", "orchestrator.store"])
def test_analysis_render_and_store_do_not_import_the_pipeline(lower):
    assert not _violations(lower, "orchestrator.pipeline")


def test_analysis_does_not_import_the_store():
    assert not _violations("orchestrator.analysis", "orchestrator.store")


@pytest.mark.parametrize("package", ["cluster", "workloads"])
def test_cluster_and_workloads_do_not_import_the_orchestrator(package):
    assert not _violations(package, "orchestrator")


def test_workloads_do_not_import_cluster_or_ray():
    assert not _violations("workloads", "cluster")
    ray = [name for name, path in MODULES.items() if _in(name, "workloads")
           and re.search(r"^\s*(import ray|from ray)", path.read_text(), re.MULTILINE)]
    assert not ray


def _sql_strings(path: Path) -> list[str]:
    """Return the string literals (f-strings too) of a module that are SQL statements."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if re.match(r"\s*(SELECT|WITH)\s.+\sFROM\s", text, re.DOTALL | re.IGNORECASE):
            found.append(text)
    return found


def test_sql_is_written_only_in_the_store():
    outside = {name: sql for name, path in MODULES.items()  # a workload's own database (db.sqlite) is its payload
               if _in(name, "orchestrator") and not _in(name, "orchestrator.store") for sql in _sql_strings(path)}
    assert not outside
    assert _sql_strings(MODULES["orchestrator.store.queries"])  # the check sees SQL where it is


@functools.cache
def _longest(module: str) -> tuple[str, ...]:
    chains = [_longest(m) for m in TOP_IMPORTS[module]]
    return (module, *max(chains, key=len, default=()))


def test_no_import_chain_is_longer_than_seven_modules():
    longest = max((_longest(m) for m in MODULES), key=len)
    assert len(longest) <= MAX_CHAIN, " -> ".join(longest)


def test_the_chain_rule_can_fail():
    # The same walk over a chain built for the purpose: it must see all eight modules.
    chain = [f"m{i}" for i in range(8)]
    graph = {m: {n} for m, n in itertools.pairwise(chain)} | {chain[-1]: set()}

    @functools.cache
    def longest(m: str) -> tuple[str, ...]:
        return (m, *max((longest(n) for n in graph[m]), key=len, default=()))

    assert len(longest("m0")) == 8 > MAX_CHAIN
