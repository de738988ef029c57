"""Bad input: one sentence on stderr naming the input and the fix, exit code 2, nothing written."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def assert_user_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert line.startswith("topobench: error: ") and "\n" not in line, line
    for fragment in fragments:
        assert fragment in line, line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args, fragments", [
    (["run", "no.such"], ["Unknown workload 'no.such'", "cpu.sqrt_mod", "memory.stream"]),
    (["run", "cpu.sqrt_mod", "--param", "cpu.sqrt_mod.nope=1"], ["Unknown parameter cpu.sqrt_mod.nope", "elements"]),
    (["run", "cpu.sqrt_mod", "--param", "cpu.sqrt_mod.elements=-5"], ["elements=-5 is below its minimum 1"]),
    (["run", "cpu.sqrt_mod", "--param", "cpu.sqrt_mod.elements=lots"], ["elements='lots' is not a valid int"]),
    (["run", "cpu.sqrt_mod", "--param", "elements"], ["has no '='"]),
    (["run", "cpu.sqrt_mod", "--param", "memory.stream.size_mib=8"], ["does not include"]),
    (["run", "db.sqlite", "--param", "db.sqlite.workload=Z"], ["db.sqlite", "Z"]),
    (["run", "--repetitions", "0"], ["--repetitions 0 must be at least 1."]),
    (["run", "--invocations", "0"], ["--invocations 0 must be at least 1."]),
    (["run", "--label", "a,b"], ["--label 'a,b' must be one line", "without commas"]),
    (["run", "--commit", "main"], ["--commit 'main' is not a commit id", "git rev-parse HEAD"]),
    (["sweep", "x.toml", "--label", " "], ["--label ' ' must be one line"]),
    (["run", "command", "--param", "command.cmd=true", "--param", "command.cwd=/no/such/dir"],
     ["command.cwd='/no/such/dir' is not a folder"]),
    (["run", "--mode", "sideways"], ["--mode 'sideways'"]),
    (["run", "--address", "auto-ish"], ["is not host:port"]),
    (["query", "SELECT 1", "--format", "xml"], ["--format 'xml'"]),
    (["run", "cpu.sqrt_mod", "cpu.sqrt_mod"], ["Workload cpu.sqrt_mod is listed twice"]),
    (["run", "--min-time", "inf"], ["--min-time inf must be a finite number."]),
    (["run", "--max-time", "nan"], ["--max-time nan must be a finite number."]),
    (["run", "cpu.sqrt_mod", "--param", "cpu.sqrt_mod.modulus=inf"], ["modulus='inf' is not a finite number"]),
    (["run", "--target", "cpu.sqrt_mod:element_ops_per_s>=nan"], ["is not a finite number"]),
])
def test_bad_input_is_refused_before_any_work(tmp_path, args, fragments):
    results = tmp_path / "results"
    result = invoke(*args, "--results", str(results))
    assert_user_error(result, *fragments)
    assert not results.exists()


@pytest.mark.parametrize("placement, fragment", [
    ("compactt", "Unknown placement 'compactt'; use one of compact, spread, cores, largest-l3, none"),
    ("0,x", "Placement '0,x' has a malformed CPU list item 'x'"),
    ("C:0", "Placement 'C:0' needs a domain number after C, e.g. C0:0-3."),
    ("N2:0", "Placement 'N2:0' names node domain N2, but only N exists; use N:<list>."),
    ("0-4294967296", "Placement '0-4294967296' names CPU 4294967296, above the largest CPU number"),
])
@pytest.mark.parametrize("command", ["run", "topology", "sweep"])
def test_every_malformed_placement_is_refused_without_ray(tmp_path, monkeypatch, placement, fragment, command):
    """No Ray connection is made (the refusal comes from parsing, before connecting), for each command."""
    import cluster.connection
    import orchestrator.pipeline.session

    connected = []

    def ray_session(*args, **kwargs):
        connected.append(args)
        raise AssertionError("connected to Ray before the input was checked")

    monkeypatch.setattr(cluster.connection, "ray_session", ray_session)
    monkeypatch.setattr(orchestrator.pipeline.session, "ray_session", ray_session)
    if command == "run":
        args = ["run", "cpu.sqrt_mod", "--placement", placement, "--results", str(tmp_path / "r")]
    elif command == "topology":
        args = ["topology", "--plan", placement]
    else:
        path = tmp_path / "s.toml"
        path.write_text(f'placement = "{placement}"\n[workloads."cpu.sqrt_mod"]\n')
        args = ["sweep", str(path), "--results", str(tmp_path / "r")]
    result = invoke(*args)
    assert_user_error(result, fragment)
    assert not (tmp_path / "r").exists()
    assert connected == []


@pytest.mark.parametrize("args, fragment", [
    (["run", "--mode", "sideways"], "--mode 'sideways' must be one of: weak, strong."),
    (["run", "--workers", "0"], "--workers 0 must be at least 1."),
    (["run", "--threads-per-worker", "0"], "--threads-per-worker 0 must be at least 1."),
])
def test_bad_mode_and_counts_are_refused_without_ray(tmp_path, args, fragment):
    result = invoke(*args, "--results", str(tmp_path / "r"))
    assert_user_error(result, fragment)


def test_unreachable_address(tmp_path):
    port = free_port()
    result = invoke("run", "cpu.sqrt_mod", "--address", f"127.0.0.1:{port}", "--results", str(tmp_path / "r"))
    assert_user_error(result, f"--address 127.0.0.1:{port}: no Ray cluster answers there", "ray start --head")
    assert not (tmp_path / "r").exists()


def test_address_that_is_not_ray(tmp_path):
    # An HTTP/1.1 server on loopback: TCP connects, but it is no Ray GCS. Without the check,
    # ray.init retries such a port for minutes.
    import http.server
    import threading

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep stderr for topobench's own message
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        result = invoke("run", "cpu.sqrt_mod", "--address", f"127.0.0.1:{port}", "--results", str(tmp_path / "r"))
    finally:
        server.shutdown()
        server.server_close()
    assert_user_error(result, f"--address 127.0.0.1:{port}: something answers there but it is not a Ray GCS")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("make_bad", [
    lambda tmp: (tmp / "file").write_text("x") and tmp / "file" / "results",
    lambda tmp: __import__("pathlib").Path("/proc/topobench-results"),
])
def test_unwritable_results_folder(tmp_path, make_bad):
    bad = make_bad(tmp_path)
    result = invoke("run", "cpu.sqrt_mod", "--results", str(bad))
    assert_user_error(result, "is not writable (creating a file in", "--results DIR")


@pytest.mark.ray
def test_more_workers_than_cpus(ray_local, tmp_path):
    result = invoke("run", "cpu.sqrt_mod", "--workers", "3", "--results", str(tmp_path / "r"))
    assert_user_error(result, "3 workers x 1 thread each need 3 CPUs", "Ray offers 2")
    assert not (tmp_path / "r").exists()


@pytest.mark.ray
def test_impossible_placement(ray_local, tmp_path):
    result = invoke("run", "cpu.sqrt_mod", "--placement", "C7:0", "--results", str(tmp_path / "r"))
    assert_user_error(result, "C7")
    assert not (tmp_path / "r").exists()


def test_results_under_proc_is_named_not_writable(tmp_path):
    result = invoke("run", "cpu.sqrt_mod", "--results", "/proc/1")
    assert_user_error(result, "Results folder '/proc/1' is not writable (creating a file in it failed")
