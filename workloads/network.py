"""Network workloads: an asyncio HTTP/1.1 keep-alive server and a load-generating client.

Method after wrk (closed loop: ``concurrency`` keep-alive connections, each sending its next
request when the previous response has arrived; coordinated omission corrected as wrk's
stats_correct) and wrk2 (open loop at a fixed ``rate``, latency measured from each request's
intended send time, so a stalled server is not hidden by the client waiting for it, after
Gil Tene). The server can be given a fixed service time and periodic stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from workloads.base import Measurement, Metric, Service, WorkerContext, Workload
from workloads.errors import UserError
from workloads.harness import Clock
from workloads.histogram import LatencyHistogram, coordinated_omission_seen
from workloads.open_loop import BACKLOG, backlog_growth
from workloads.params import Param
from workloads.registry import register

HOST = "127.0.0.1"
HEAD_LIMIT_BYTES = 64 * 1024
SPIN_NS = 1_000_000  # the generator spins this long before each due send
PACING_SLACK_NS = 500_000  # service_ms: a request seen this soon after the last due time queued


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
    """An HTTP/1.1 keep-alive server: one thread running one event loop (127.0.0.1 by default).

    Every request (any method and path) gets ``200 OK`` with ``body_bytes`` bytes; a request
    body announced by Content-Length is read and discarded. Two knobs make the server's
    behaviour known in advance:

    - ``service_ms``: each request blocks the loop thread (``time.sleep``, which releases the
      GIL) until its response is due, so requests serialize on the one thread and the
      capacity is 1000 / service_ms requests/s (2 ms: 500/s). A response is due service_ms
      after the later of when the server saw the request and when the previous response was
      due; a request seen within 0.5 ms (at most service_ms) of that due time counts as
      queued behind it, so the server's own time per request (reading, writing, the sleep's
      overshoot: ~0.1-0.4 ms in Python) does not add to service_ms when it is busy.
    - ``stall_ms`` every ``stall_every_s``: windows [k P, k P + stall) after ``start`` in which
      the server answers nothing: a request handled inside a window first blocks the loop
      thread until the window ends (a stop-the-world pause, as a GC or a swap-in would).
    """

    def __init__(self, body_bytes: int, host: str = HOST, service_ms: float = 0.0,
                 stall_ms: float = 0.0, stall_every_s: float = 0.0) -> None:
        self.host = host
        self._response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                          b"Content-Length: %d\r\n\r\n" % body_bytes) + b"x" * body_bytes
        self._service_ns = int(service_ms * 1e6)
        self._due_ns = 0  # when the previous response was due (service_ms pacing)
        self._stall_ns = int(stall_ms * 1e6) if stall_every_s > 0 else 0
        self._period_ns = int(stall_every_s * 1e9)
        self._origin_ns = 0
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
        self._origin_ns = time.perf_counter_ns()

    def _hold(self) -> None:
        """Block the loop thread to the end of the stall window in progress, then for the service time."""
        if self._stall_ns:
            phase = (time.perf_counter_ns() - self._origin_ns) % self._period_ns
            if phase < self._stall_ns:
                time.sleep((self._stall_ns - phase) / 1e9)
        if self._service_ns:
            now = time.perf_counter_ns()
            queued = now - self._due_ns <= min(self._service_ns, PACING_SLACK_NS)
            self._due_ns = (self._due_ns if queued else now) + self._service_ns
            if self._due_ns > now:
                time.sleep((self._due_ns - now) / 1e9)

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
                self._hold()
                writer.write(self._response)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                ValueError, asyncio.CancelledError):
            pass  # client went away, sent garbage, or the server is shutting down
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


def server_for(params: Mapping[str, Any], host: str = HOST) -> HttpServer:
    """Return (not started) the ``net.http`` server that ``params`` describe."""
    return HttpServer(params["body_bytes"], host, params.get("service_ms", 0.0),
                      params.get("stall_ms", 0.0), params.get("stall_every_s", 0.0))


class HttpService(Service):
    """The ``net.http`` server as a trial-wide service on one node (``server_node``)."""

    _server: HttpServer | None = None

    def start(self, host: str) -> dict[str, Any]:
        """Listen on ``host`` (the service node's IP); return {"host", "port"}."""
        self._server = server_for(self.params, host)
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


@dataclass(frozen=True, slots=True)
class Drive:
    """What one ``_drive`` did: per-request times (ns), which responses were good, its length."""

    latency_ns: np.ndarray  # from when the request was due (open) or its connection ready (closed)
    from_send_ns: np.ndarray  # from the actual send
    send_lag_ns: np.ndarray  # actual send - when the connection could have sent
    ok: np.ndarray  # bool: a verified 200 of the expected length
    elapsed_ns: int
    connections: int  # connections that took part

    def interval_ns(self) -> int:
        """Return wrk's expected interval: elapsed / (good responses per connection); 0 when none."""
        good = int(self.ok.sum())
        return self.elapsed_ns * self.connections // good if good else 0


async def wait_until(due_ns: int, clock: Clock = time.perf_counter_ns) -> None:
    """Sleep until ``clock`` reads ``due_ns``; spin the last millisecond, yielding to the loop.

    asyncio's epoll wait rounds its timeout up to whole ms, so a plain ``asyncio.sleep`` wakes
    up to ~1 ms late; sleeping to 1 ms before and then spinning on ``asyncio.sleep(0)`` (which
    still lets the loop read other connections' responses) sends within a few us.
    """
    left = due_ns - clock()
    if left > SPIN_NS:
        await asyncio.sleep((left - SPIN_NS) / 1e9)
    while clock() < due_ns:
        await asyncio.sleep(0)


@register
class HttpLoad(Workload):
    """HTTP/1.1 GETs over keep-alive connections to a server on loopback, each verified.

    One op is one HTTP request whose response arrived as a 200 with a body of exactly
    ``body_bytes`` bytes; failed ones count in ``error_rate``, not in the throughput or the
    latency histograms. Histograms of every good request (ns):

    - ``latency``: what a client sees. Closed loop (``rate=0``, as wrk): each of
      ``concurrency`` connections sends its next request when the last response is in, and
      latency runs from that moment (the first request's from the sample start), so
      requests/s x mean latency = concurrency (Little's law). Open loop (``rate`` requests/s,
      as wrk2): request i is due at start + i/rate on connection i mod concurrency, and its
      latency runs from that intended time, so queueing behind a slow response counts.
    - ``latency_uncorrected``: from the actual send (wrk2's "uncorrected" latency).
    - ``latency_corrected``: closed loop: ``latency`` with HdrHistogram's coordinated-omission
      correction at wrk's expected interval (elapsed / responses per connection); the sample
      is flagged ``coordinated_omission`` when its corrected p99 is more than twice the raw
      p99 (``histogram.coordinated_omission_seen``). Open loop: equal to ``latency``.
    - ``send_lag``: how late the generator sent: actual send - max(due time, the
      connection's previous response). The generator sleeps to 1 ms before each due time,
      then spins (``wait_until``).

    Server knobs (in-worker server and shared ``server_node`` alike): ``service_ms`` serializes
    requests on the server's one thread (capacity 1000/service_ms requests/s), ``stall_ms``
    every ``stall_every_s`` stops it answering. With the in-worker server, server and client
    share the worker process (and the GIL): the figure is what an asyncio HTTP stack does on
    this CPU over loopback.
    Source: wrk (closed loop, stats_correct) and wrk2 (constant rate, latency from the
    intended send time, after Gil Tene); HdrHistogram's recordValueWithExpectedInterval.
    """

    name = "net.http"
    summary = "asyncio HTTP/1.1 keep-alive server and client on loopback; requests/s, latency"
    source = "wrk / wrk2 (Gil Tene: latency from intended send time, no coordinated omission)"
    op = "one HTTP GET answered 200 with the expected body length"
    throughput = Metric("requests_per_s", "requests/s", "verified HTTP responses per second")
    metrics = (
        Metric("error_rate", "fraction", "share of requests that failed or were malformed",
               better="lower"),
    )
    latencies = (
        Metric("latency", "ms", "request latency (open loop: from the intended send time)",
               better="lower"),
        Metric("latency_uncorrected", "ms", "request latency from the actual send",
               better="lower"),
        Metric("latency_corrected", "ms",
               "request latency corrected for coordinated omission", better="lower"),
        Metric("send_lag", "ms", "generator lateness behind the schedule", better="lower"),
    )
    sample_flags = MappingProxyType({
        "coordinated_omission": (
            "a closed-loop sample's latency corrected for coordinated omission has more than "
            "twice the raw p99: the server stalled and the raw latencies hide it; read "
            "latency_corrected, or run open loop with rate="),
    })
    params = (
        Param("concurrency", 8, "keep-alive client connections", "", minimum=1,
              maximum=10_000),
        Param("body_bytes", 1024, "response body size", "B", minimum=0, maximum=64 << 20),
        Param("rate", 0.0, "open-loop arrival rate; 0 = closed loop", "requests/s",
              minimum=0.0, maximum=1e7),
        Param("timeout_s", 10.0, "a response slower than this is an error", "s",
              minimum=0.001, maximum=3600.0),
        Param("service_ms", 0.0, "server time per request on its one thread (capacity "
              "1000/service_ms requests/s); 0 = none", "ms", minimum=0.0, maximum=60_000.0),
        Param("stall_ms", 0.0, "the server stops answering this long every stall_every_s",
              "ms", minimum=0.0, maximum=3_600_000.0),
        Param("stall_every_s", 0.0, "period of the server's stalls; 0 = never", "s",
              minimum=0.0, maximum=86_400.0),
        Param("server_node", "", "node that runs one shared server for all workers: 'head', "
              "a hostname or an IP; '' = a server inside each worker on 127.0.0.1", ""),
    )
    service = HttpService

    @classmethod
    def extra_metrics(cls, params: Mapping[str, Any]) -> tuple[Metric, ...]:
        return (*cls.metrics, BACKLOG) if params.get("rate", 0) > 0 else cls.metrics

    @classmethod
    def validate(cls, params: Mapping[str, Any]) -> None:
        """Refuse a stall without a period, and a stall as long as its period."""
        stall, every = params["stall_ms"], params["stall_every_s"]
        if stall > 0 and every == 0:
            raise UserError(f"Parameter net.http.stall_ms={stall} needs a period; give "
                            "stall_every_s too (e.g. stall_ms=50 stall_every_s=1).")
        if stall > 0 and stall >= every * 1000:
            raise UserError(f"Parameter net.http.stall_ms={stall} is not shorter than "
                            f"stall_every_s={every} s; give a stall shorter than its period.")

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
            self._server = server_for(p)
            self._server.start()
            host, self.port = HOST, self._server.port
        self._loop = asyncio.new_event_loop()
        self._conns = tuple(_Connection(host, self.port, p["body_bytes"], p["timeout_s"])
                            for _ in range(p["concurrency"]))
        self._loop.run_until_complete(_gather(*(c.open() for c in self._conns)))

    def run(self, n: int) -> Measurement:
        drive = self._loop.run_until_complete(self._drive(n))
        return Measurement(ops=int(drive.ok.sum()), finish=lambda: self._summary(drive, n))

    def _summary(self, drive: Drive, n: int) -> Measurement:
        """Return the sample's figures and histograms (after the clock stopped)."""
        ok = drive.ok
        latency = LatencyHistogram.of(drive.latency_ns[ok])
        if self.params["rate"] > 0:
            corrected = LatencyHistogram.of(drive.latency_ns[ok])
            flags: frozenset[str] = frozenset()
        else:
            corrected = LatencyHistogram()
            corrected.record_corrected(drive.latency_ns[ok], drive.interval_ns())
            seen = coordinated_omission_seen(latency, corrected)
            flags = frozenset({"coordinated_omission"}) if seen else frozenset()
        errors = int(n - ok.sum())
        metrics = {"error_rate": errors / n if n else math.nan}
        if self.params["rate"] > 0:
            metrics[BACKLOG.name] = backlog_growth(drive.latency_ns, self.params["rate"])
        return Measurement(
            ops=n - errors,
            metrics=metrics,
            histograms={"latency": latency,
                        "latency_uncorrected": LatencyHistogram.of(drive.from_send_ns[ok]),
                        "latency_corrected": corrected,
                        "send_lag": LatencyHistogram.of(drive.send_lag_ns)},
            flags=flags)

    async def _drive(self, n: int) -> Drive:
        """Issue ``n`` requests (closed or open loop) and time each."""
        lat = np.zeros(n, dtype=np.int64)
        sent_to_done = np.zeros(n, dtype=np.int64)
        lag = np.zeros(n, dtype=np.int64)
        ok = np.zeros(n, dtype=bool)
        rate = self.params["rate"]
        clock = time.perf_counter_ns
        conns = self._conns[:max(1, min(n, len(self._conns)))]
        c = len(conns)
        issued = 0

        async def closed(conn: _Connection) -> None:
            nonlocal issued
            ready = start
            while issued < n:
                i = issued
                issued += 1
                sent = clock()
                ok[i] = await conn.request()
                done = clock()
                lat[i], sent_to_done[i], lag[i] = done - ready, done - sent, sent - ready
                ready = done

        async def open_loop(k: int, conn: _Connection) -> None:
            free = start
            for i in range(k, n, c):
                due = start + int(i * 1e9 / rate)
                await wait_until(due, clock)
                sent = clock()
                ok[i] = await conn.request()
                done = clock()
                lat[i], sent_to_done[i], lag[i] = done - due, done - sent, sent - max(due, free)
                free = done

        start = clock()
        if rate > 0:
            await asyncio.gather(*(open_loop(k, conn) for k, conn in enumerate(conns)))
        else:
            await asyncio.gather(*(closed(conn) for conn in conns))
        return Drive(lat, sent_to_done, lag, ok, clock() - start, c)

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
