"""Environment capture on this machine and on synthetic roots; noise warnings on hand-made dicts."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cluster.environment import capture_environment, environment_warnings
from orchestrator.cli import app
from orchestrator.render.notes import print_warnings

FIELDS = ("hostname", "cpu_model", "cpu_flags", "cpu_count", "kernel", "memory_total_bytes",
          "memory_available_bytes", "memory_free_bytes", "governor", "boost", "smt_active",
          "amd_x3d_mode", "vm", "container", "cpu_quota_cpus", "load_avg_1m", "load_avg_5m",
          "load_avg_15m", "versions", "compiler")


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_this_machine_has_every_key_and_the_basics():
    env = capture_environment("/")
    assert set(FIELDS) <= set(env)
    assert env["hostname"] and env["kernel"]
    assert env["memory_total_bytes"] > 0 and env["cpu_count"] >= 1
    assert env["load_avg_1m"] is not None
    assert env["versions"]["python"] and env["versions"]["numpy"] and env["versions"]["ray"]
    assert env["compiler"]["numba"] and env["compiler"]["cpu_name"]  # what numba compiles for
    json.dumps(env)  # stored as JSON and printed by `env --json`


def test_empty_root_gives_none_for_every_machine_fact(tmp_path):
    env = capture_environment(tmp_path)
    for key in FIELDS:
        if key != "versions":  # interpreter facts, not machine files
            assert env[key] is None, key


def test_synthetic_root_reads_boost_turbo_smt_quota_vm_container(tmp_path):
    root = tmp_path
    _write(root, "proc/cpuinfo", "model name\t: AMD Ryzen 9 7950X3D\nflags\t\t: fpu avx avx2 fma hypervisor\n")
    _write(root, "sys/devices/system/cpu/online", "0-7,16-23")
    _write(root, "sys/devices/system/cpu/intel_pstate/no_turbo", "1")
    _write(root, "sys/devices/system/cpu/smt/active", "1")
    _write(root, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "powersave")
    _write(root, "sys/devices/platform/AMDI0101:00/amd_x3d_mode", "cache")
    _write(root, "sys/class/dmi/id/sys_vendor", "QEMU")
    _write(root, "proc/mounts", "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n")
    _write(root, "proc/self/cgroup", "0::/kubepods/pod1/abc\n")
    _write(root, "sys/fs/cgroup/kubepods/pod1/cpu.max", "250000 100000")
    _write(root, "proc/loadavg", "3.50 2.00 1.00 2/300 999")
    _write(root, "proc/meminfo", "MemTotal:  1024 kB\nMemFree:  256 kB\nMemAvailable:  512 kB\n")
    _write(root, "proc/sys/kernel/osrelease", "6.1.0-test")
    env = capture_environment(root)
    assert env["cpu_model"] == "AMD Ryzen 9 7950X3D"
    assert env["cpu_flags"] == ["avx", "avx2", "fma"]
    assert env["cpu_count"] == 16
    assert env["boost"] is False  # no_turbo=1
    assert env["smt_active"] is True
    assert env["governor"] == "powersave"
    assert env["amd_x3d_mode"] == "cache"
    assert env["vm"] == "qemu"
    assert env["container"] == "kubernetes"
    assert env["cpu_quota_cpus"] == 2.5
    assert (env["load_avg_1m"], env["load_avg_15m"]) == (3.5, 1.0)
    assert (env["memory_total_bytes"], env["memory_available_bytes"], env["memory_free_bytes"]) == (
        1024 * 1024, 512 * 1024, 256 * 1024)
    assert env["kernel"] == "6.1.0-test"


def test_cpufreq_boost_wins_and_unlimited_quota_and_docker(tmp_path):
    _write(tmp_path, "sys/devices/system/cpu/cpufreq/boost", "1")
    _write(tmp_path, "sys/devices/system/cpu/intel_pstate/no_turbo", "1")
    _write(tmp_path, "proc/self/cgroup", "0::/\n")
    _write(tmp_path, "sys/fs/cgroup/cpu.max", "max 100000")
    _write(tmp_path, ".dockerenv", "")
    env = capture_environment(tmp_path)
    assert env["boost"] is True
    assert env["cpu_quota_cpus"] is None
    assert env["container"] == "docker"


def test_cgroup_v1_cfs_quota(tmp_path):
    _write(tmp_path, "proc/mounts", "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n")
    _write(tmp_path, "proc/self/cgroup", "4:cpu,cpuacct:/job\n")
    _write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us", "50000")
    _write(tmp_path, "sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_period_us", "100000")
    assert capture_environment(tmp_path)["cpu_quota_cpus"] == 0.5


def _env(**kw):
    base = {"hostname": "a", "governor": "performance", "boost": False, "load_avg_1m": 0.1,
            "cpu_count": 4, "kernel": "6.1", "cpu_model": "X"}
    return {**base, **kw}


def test_no_warnings_for_a_quiet_tuned_node_or_unknown_facts():
    assert environment_warnings([_env()]) == []
    assert environment_warnings([{"hostname": "b"}]) == []
    assert environment_warnings([]) == []


def test_warnings_per_node():
    warnings = environment_warnings([_env(governor="powersave", boost=True, load_avg_1m=2.5)])
    assert len(warnings) == 3
    assert "governor is 'powersave'" in warnings[0]
    assert "turbo/boost is on" in warnings[1]
    assert "load average 2.50 on 4 CPUs" in warnings[2]
    assert environment_warnings([_env(load_avg_1m=2.0)]) == []  # exactly 0.5 per CPU is fine


def test_warnings_across_nodes():
    warnings = environment_warnings([_env(), _env(hostname="b", kernel="6.8", cpu_model="Y")])
    assert warnings == [
        "Nodes differ in kernel (a=6.1, b=6.8); their results are not directly comparable.",
        "Nodes differ in CPU model (a=X, b=Y); their results are not directly comparable.",
    ]


def test_print_warnings_accepts_dicts():
    from rich.console import Console

    console = Console(record=True, width=200)
    assert print_warnings(console, [_env(boost=True)])
    assert "turbo/boost is on" in console.export_text()


def test_env_command_table_and_json(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = CliRunner().invoke(app, ["env"])
    assert result.exit_code == 0, result.output
    for label in ("CPU model", "turbo/boost", "SMT", "VM", "container", "CPU quota", "BLAS", "Ray"):
        assert label in result.output
    result = CliRunner().invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["nodes"]) == 1 and isinstance(data["warnings"], list)
    assert data["nodes"][0]["topology_summary"]


def test_env_command_on_the_cluster(ray_local, monkeypatch):
    monkeypatch.setattr("cluster.address.resolve_address", lambda a: a)
    monkeypatch.setattr("cluster.connection.resolve_address", lambda a: a)
    result = CliRunner().invoke(app, ["env", "--json", "--address", "connected"])
    assert result.exit_code == 0, result.output
    node = json.loads(result.output)["nodes"][0]
    assert node["node_id"] and node["topology_summary"]


def test_cpu_quota_found_through_proc_mounts_not_an_assumed_path(tmp_path):
    # cgroup v1 cpu controller mounted somewhere unusual, the process in a nested group.
    _write(tmp_path, "proc/mounts", "cgroup /mnt/cg/cpu cgroup rw,cpu,cpuacct 0 0\n")
    _write(tmp_path, "proc/self/cgroup", "4:cpu,cpuacct:/jobs/7\n")
    _write(tmp_path, "mnt/cg/cpu/jobs/7/cpu.cfs_quota_us", "150000")
    _write(tmp_path, "mnt/cg/cpu/jobs/7/cpu.cfs_period_us", "100000")
    _write(tmp_path, "sys/fs/cgroup/cpu.max", "100000 100000")  # a decoy at the usual path
    assert capture_environment(tmp_path)["cpu_quota_cpus"] == 1.5
