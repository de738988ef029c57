"""Network workloads: an asyncio HTTP/1.1 keep-alive server and a load-generating client.

Method after wrk (closed loop: ``concurrency`` keep-alive connections, each sending its next
request when the previous response has arrived) and wrk2 (open loop at a fixed ``rate``,
latency measured from each request's intended send time, so a stalled server is not hidden
by the client waiting for it: no coordinated omission, after Gil Tene).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from workloads.base import Measurement, Metric, Service, WorkerContext, Workload
from workloads.params import Param
from workloads.registry import register

HOST = "127.0.0.1"
HEAD_LIMIT_BYTES = 64 * 1024


async def _gather(*coros: Any) -> list[Any]:
    """Await ``coros`` together (a coroutine, so the caller's loop runs it)."""
    return await asyncio.gather(*coros)


class ResponseError(Exception):
    """A response that is not a well-formed 200 with the expected body length."""


def parse_response_head(head: bytes) -> tuple[int, int]:
    """Return (status, content length) of an HTTP/1.1 response head ending in CRLF CRLF.

    Raises:
        ResponseError: not HTTP/1.x, a bad status line, or no valid Content-Length.
    """
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ResponseError(f"bad status line {lines[0]!r}")
    length = None
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "content-length":
            if not value.strip().isdigit():
                raise ResponseError(f"bad Content-Length {value.strip()!r}")
            length = int(value.strip())
    if length is None:
        raise ResponseError("no Content-Length header")
    return int(parts[1]), length


async def read_response(reader: asyncio.StreamReader, expect_bytes: int) -> None:
    """Read one response; raise ``ResponseError`` unless it is a 200 of ``expect_bytes``."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ResponseError("response head too long") from None
    status, length = parse_response_head(head)
    body = await reader.readexactly(length)
    if status != 200:
        raise ResponseError(f"status {status}")
    if len(body) != expect_bytes:
        raise ResponseError(f"body of {len(body)} bytes, expected {expect_bytes}")


class HttpServer:
    """An HTTP/1.1 keep-alive server in a thread with its own event loop (127.0.0.1 by default).

    Every request (any method and path) gets ``200 OK`` with ``body_bytes`` bytes; a request
    body announced by Content-Length is read and discarded.
    """

    def __init__(self, body_bytes: int, host: str = HOST) -> None:
        self.host = host
        self._response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                          b"Content-Length: %d\r\n\r\n" % body_bytes) + b"x" * body_bytes
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="net.http-server",
                                        daemon=True)
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    def start(self) -> None:
        """Start the loop thread and listen on an ephemeral port (``self.port``)."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, self.host, 0, limit=HEAD_LIMIT_BYTES), self._loop)
        self._server = future.result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                close = False
                length = 0
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value.strip())
                    elif name == "connection" and value.strip().lower() == "close":
                        close = True
                if length:
                    await reader.readexactly(length)
                writer.write(self._response)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                ValueError):
            pass  # client went away or sent garbage: drop the connection
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _shutdown(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        """Close the listener and every connection, stop the loop and join its thread."""
        if self._thread.is_alive():
            if hasattr(self, "_server"):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()


class HttpService(Service):
    """The ``net.http`` server as a trial-wide service on one node (``server_node``)."""

    _server: HttpServer | None = None

    def start(self, host: str) -> dict[str, Any]:
        """Listen on ``host`` (the service node's IP); return {"host", "port"}."""
        self._server = HttpServer(self.params["body_bytes"], host)
        self._server.start()
        return {"host": host, "port": self._server.port}

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()


class _Connection:
    """One client keep-alive connection; reopened after an error leaves it unusable."""

    def __init__(self, host: str, port: int, body_bytes: int, timeout_s: float) -> None:
        self._host = host
        self._port = port
        self._body = body_bytes
        self._timeout = timeout_s
        self._request = (f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n"
                         "User-Agent: topobench\r\n\r\n").encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect to the server."""
        self._reader, self._writer = await asyncio.open_connection(
            self._host, self._port, limit=HEAD_LIMIT_BYTES)

    async def request(self) -> bool:
        """Send one GET and verify its response; return False (and reconnect) on error."""
        try:
            if self._writer is None:
                await self.open()
            self._writer.write(self._request)
            await asyncio.wait_for(read_response(self._reader, self._body), self._timeout)
            return True
        except (ResponseError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            await self.close()
            return False

    async def close(self) -> None:
        """Close the connection, if open."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


@register
class HttpLoad(Workload):
    """HTTP/1.1 GETs over keep-alive connections to a server on loopback, each verified.

    One op is one HTTP request whose response arrived as a 200 with a body of exactly
    ``body_bytes`` bytes; failed ones count in ``error_rate``, not in the throughput.
    Closed loop (``rate=0``, as wrk): each of ``concurrency`` connections sends its next
    request when the last response is in; latency is send to response. Open loop (``rate``
    requests/s, as wrk2): request i is due at start + i/rate on connection i mod concurrency,
    and its latency runs from that intended time, so queueing behind a slow response counts.
    Server and client share the worker process (and the GIL): the figure is what an asyncio
    HTTP stack does on this CPU over loopback.
    Source: wrk (closed loop) and wrk2 (constant-rate, coordinated-omission-free latency).
    """

    name = "net.http"
    summary = "asyncio HTTP/1.1 keep-alive server and client on loopback; requests/s, latency"
    source = "wrk / wrk2 (Gil Tene: latency from intended send time, no coordinated omission)"
    op = "one HTTP GET answered 200 with the expected body length"
    throughput = Metric("requests_per_s", "requests/s", "verified HTTP responses per second")
    metrics = (
        Metric("latency_p50_ms", "ms", "median request latency", better="lower"),
        Metric("latency_p95_ms", "ms", "95th percentile request latency",
               better="lower"),
        Metric("latency_p99_ms", "ms", "99th percentile request latency",
               better="lower"),
        Metric("latency_max_ms", "ms", "slowest request", better="lower"),
        Metric("error_rate", "fraction", "share of requests that failed or were malformed",
               better="lower"),
    )
    params = (
        Param("concurrency", 8, "keep-alive client connections", "", minimum=1,
              maximum=10_000),
        Param("body_bytes", 1024, "response body size", "B", minimum=0, maximum=64 << 20),
        Param("rate", 0.0, "open-loop arrival rate; 0 = closed loop", "requests/s",
              minimum=0.0, maximum=1e7),
        Param("timeout_s", 10.0, "a response slower than this is an error", "s",
              minimum=0.001, maximum=3600.0),
        Param("server_node", "", "node that runs one shared server for all workers: 'head', "
              "a hostname or an IP; '' = a server inside each worker on 127.0.0.1", ""),
    )
    service = HttpService

    @classmethod
    def service_node(cls, params: Mapping[str, Any]) -> str:
        """Return ``server_node``: where the shared server runs ("" = in each worker)."""
        return params["server_node"]

    _server: HttpServer | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _conns: tuple[_Connection, ...] = ()

    def setup(self, ctx: WorkerContext) -> None:
        p = self.params
        if ctx.service_endpoint is not None:  # one shared server on another node
            host, self.port = ctx.service_endpoint["host"], ctx.service_endpoint["port"]
        else:
            self._server = HttpServer(p["body_bytes"])
            self._server.start()
            host, self.port = HOST, self._server.port
        self._loop = asyncio.new_event_loop()
        self._conns = tuple(_Connection(host, self.port, p["body_bytes"], p["timeout_s"])
                            for _ in range(p["concurrency"]))
        self._loop.run_until_complete(_gather(*(c.open() for c in self._conns)))

    def run(self, n: int) -> Measurement:
        lat_ns, errors = self._loop.run_until_complete(self._drive(n))
        lat_ms = lat_ns / 1e6
        p50, p95, p99, top = (np.percentile(lat_ms, (50, 95, 99, 100)) if lat_ms.size
                              else (math.nan,) * 4)
        return Measurement(ops=n - errors, metrics={
            "latency_p50_ms": float(p50),
            "latency_p95_ms": float(p95),
            "latency_p99_ms": float(p99),
            "latency_max_ms": float(top),
            "error_rate": errors / n if n else math.nan,
        })

    async def _drive(self, n: int) -> tuple[np.ndarray, int]:
        """Issue ``n`` requests; return latencies (ns) of the good ones and the error count."""
        lat = np.zeros(n, dtype=np.int64)
        ok = np.zeros(n, dtype=bool)
        rate = self.params["rate"]
        clock = time.perf_counter_ns
        c = len(self._conns)
        start = clock()

        async def closed(conn: _Connection) -> None:
            nonlocal issued
            while issued < n:
                i = issued
                issued += 1
                t0 = clock()
                ok[i] = await conn.request()
                lat[i] = clock() - t0

        async def open_loop(k: int, conn: _Connection) -> None:
            for i in range(k, n, c):
                due = start + int(i * 1e9 / rate)
                wait = due - clock()
                if wait > 0:
                    await asyncio.sleep(wait / 1e9)
                ok[i] = await conn.request()
                lat[i] = clock() - due

        issued = 0
        if rate > 0:
            await asyncio.gather(*(open_loop(k, conn) for k, conn in enumerate(self._conns)))
        else:
            await asyncio.gather(*(closed(conn) for conn in self._conns))
        return lat[ok], int(n - ok.sum())

    def teardown(self) -> None:
        loop, server, conns = self._loop, self._server, self._conns
        self._loop, self._server, self._conns = None, None, ()
        try:
            if loop is not None:
                loop.run_until_complete(_gather(*(c.close() for c in conns)))
                loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            if loop is not None:
                loop.close()
            if server is not None:
                server.stop()
