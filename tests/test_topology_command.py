"""`topobench topology`: tree, JSON and plan preview on snapshots; refusals with exit 2."""

from __future__ import annotations

import json

from sysfs_builder import ryzen_7950x3d
from typer.testing import CliRunner

from orchestrator.cli import app


def invoke(*args: str):
    return CliRunner().invoke(app, ["topology", *args])


def test_tree_shows_both_ccds_with_sizes(tmp_path):
    root = ryzen_7950x3d(tmp_path)
    result = invoke("--sysfs", str(root))
    assert result.exit_code == 0, result.output
    assert "L3 #0 96 MiB, CPUs 0-7,16-23" in result.stdout
    assert "L3 #1 32 MiB, CPUs 8-15,24-31" in result.stdout
    assert "Core 0: PU 0, PU 16" in result.stdout


def test_json_plan_spread_uses_both_ccds(tmp_path):
    root = ryzen_7950x3d(tmp_path)
    result = invoke("--sysfs", str(root), "--json", "--plan", "spread", "--workers", "4",
                    "--threads-per-worker", "2")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    plan = out["plan"]
    assert [p["l3_domain"] for p in plan] == [0, 1, 0, 1]
    assert all(len(p["cpus"]) == 2 for p in plan)
    assert len({c for p in plan for c in p["cpus"]}) == 8
    assert len(out["topology"]["l3_domains"]) == 2


def test_largest_l3_plan_stays_on_vcache_ccd(tmp_path):
    root = ryzen_7950x3d(tmp_path, big_on_high=True)
    result = invoke("--sysfs", str(root), "--json", "--plan", "largest-l3", "--workers", "8")
    assert result.exit_code == 0, result.output
    cpus = {c for p in json.loads(result.stdout)["plan"] for c in p["cpus"]}
    assert cpus <= set(range(8, 16)) | set(range(24, 32))


def test_impossible_plan_is_refused(tmp_path):
    root = ryzen_7950x3d(tmp_path)
    result = invoke("--sysfs", str(root), "--plan", "cores", "--workers", "17")
    assert result.exit_code == 2
    assert result.stderr.startswith("topobench: error: Placement 'cores' needs 17 physical cores")


def test_snapshot_folder_without_sysfs_is_refused(tmp_path):
    result = invoke("--sysfs", str(tmp_path))
    assert result.exit_code == 2
    assert "holds no sys/devices/system/cpu" in result.stderr


def test_live_machine_lists_usable_cpus():
    result = invoke("--json")
    assert result.exit_code == 0
    topo = json.loads(result.stdout)["topology"]
    assert topo["usable_cpus"] and set(topo["usable_cpus"]) <= set(topo["pus"])
