"""Tests of net.http: responses verified, open-loop schedule, bad params, cleanup."""

from __future__ import annotations

import asyncio
import threading

import psutil
import pytest

from workloads import UserError, WorkerContext, network
from workloads.harness import calibrate, time_run
from workloads.network import HttpLoad, HttpServer, ResponseError, parse_response_head


def _check(raw: bytes, expect: int) -> None:
    async def go():
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        await network.read_response(reader, expect)

    asyncio.run(go())


def test_parser_reads_status_and_length():
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nX-A: b\r\n\r\n"
    assert parse_response_head(head) == (200, 5)
    _check(head + b"hello", 5)


@pytest.mark.parametrize("raw, expect, match", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 5, "body of 3 bytes"),
    (b"HTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\nhello", 5, "status 500"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 5, "no Content-Length"),
    (b"SPDY 200 OK\r\nContent-Length: 5\r\n\r\nhello", 5, "bad status line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nhello", 5, "bad Content-Length"),
])
def test_parser_rejects_bad_responses(raw, expect, match):
    with pytest.raises(ResponseError, match=match):
        _check(raw, expect)


def test_truncated_body_is_an_error():
    with pytest.raises(asyncio.IncompleteReadError):
        _check(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", 5)


def _listening(port: int) -> list:
    return [c for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port]


def test_closed_loop_verifies_every_response_and_cleans_up():
    before = set(threading.enumerate())
    w = HttpLoad({"concurrency": 4, "body_bytes": 3000})
    w.setup(WorkerContext())
    port = w.port
    assert _listening(port)
    try:
        n = calibrate(w.run, 0.02)
        m = time_run(w.run, n).measurement
    finally:
        w.teardown()
    assert m.ops == n and m.metrics["error_rate"] == 0.0
    lat = [m.metrics[k] for k in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
                                  "latency_max_ms")]
    assert lat == sorted(lat) and lat[0] > 0
    assert not _listening(port)
    assert set(threading.enumerate()) == before


def test_open_loop_keeps_the_schedule():
    w = HttpLoad({"concurrency": 2, "rate": 4000.0, "body_bytes": 0})
    w.setup(WorkerContext())
    try:
        timed = time_run(w.run, 200)
    finally:
        w.teardown()
    assert timed.measurement.ops == 200
    assert timed.measurement.metrics["error_rate"] == 0.0
    assert timed.elapsed_ns >= 199 / 4000 * 1e9  # request 199 is not sent before its time


class _ShortBodyServer(HttpServer):
    """A server whose responses announce and send one byte less than the client expects."""

    def __init__(self, body_bytes: int) -> None:
        super().__init__(body_bytes - 1)


def test_mismatched_body_counts_as_error(monkeypatch):
    monkeypatch.setattr(network, "HttpServer", _ShortBodyServer)
    before = set(threading.enumerate())
    w = HttpLoad({"concurrency": 2, "body_bytes": 100})
    w.setup(WorkerContext())
    try:
        m = w.run(20)
    finally:
        w.teardown()
    assert m.ops == 0 and m.metrics["error_rate"] == 1.0
    assert set(threading.enumerate()) == before


def test_server_answers_several_requests_per_connection():
    server = HttpServer(7)
    server.start()

    async def go():
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for _ in range(3):
            writer.write(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody")
            await network.read_response(reader, 7)
        writer.write(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        await network.read_response(reader, 7)
        assert await reader.read() == b""  # server closed after Connection: close
        writer.close()
        await writer.wait_closed()

    try:
        asyncio.run(go())
    finally:
        server.stop()
    assert not _listening(server.port)


def test_shared_service_serves_a_client_workload():
    # The server as a trial-wide Service (server_node) on a real socket; the client finds it
    # through ctx.service_endpoint and starts no server of its own.
    service = HttpLoad.service({"body_bytes": 100})
    endpoint = service.start("127.0.0.1")
    try:
        wl = HttpLoad({"concurrency": 2, "body_bytes": 100, "server_node": "head"})
        wl.setup(WorkerContext(service_endpoint=endpoint))
        try:
            assert wl._server is None and wl.port == endpoint["port"]
            m = wl.run(20)
            assert m.ops == 20 and m.metrics["error_rate"] == 0.0
        finally:
            wl.teardown()
    finally:
        service.stop()
    assert HttpLoad.service_node({"server_node": "head"}) == "head"


@pytest.mark.parametrize("params", [{"concurrency": 0}, {"body_bytes": -1}, {"rate": -1.0}])
def test_bad_params_are_refused(params):
    with pytest.raises(UserError):
        HttpLoad(params)


def test_teardown_after_failed_setup_is_safe(monkeypatch):
    def refuse(self):
        raise OSError("no port")

    before = set(threading.enumerate())
    HttpLoad({}).teardown()
    monkeypatch.setattr(HttpServer, "start", refuse)
    w = HttpLoad({})
    with pytest.raises(OSError):
        w.setup(WorkerContext())
    w.teardown()
    assert set(threading.enumerate()) == before
