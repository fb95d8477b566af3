"""A lean HTTP/1.1 load generator: keep-alive connections posting one body in a loop.

The clients share the 2 cores with the server under test, so what they spend is taken
from it. aiohttp's client spent 300-450 µs of CPU per request here (a fifth of the machine
at 1,000 requests/s); this one writes a prepared request and reads the answer by its
``Content-Length`` on asyncio protocols (uvloop when installed), as wrk or h2load would,
for a few tens of µs. It speaks only what the bench needs: POST, keep-alive, answers
with a Content-Length (anything else is a failed request).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is not on every platform
    uvloop = None


@dataclass
class Tally:
    """What the clients saw while measuring."""

    ok: int = 0
    failed: int = 0
    events: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: sends the request again as soon as an answer is whole."""

    def __init__(self, request: bytes, run: _Run):
        self.request = request
        self.run = run
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = run.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(buffer[:head_end]).lower()
            start = head.find(b"\r\ncontent-length:")
            if start < 0:
                self._fail("an answer without Content-Length")
                return
            line_end = head.find(b"\r\n", start + 2)
            length = int(head[start + 17 : line_end if line_end > 0 else len(head)])
            body_end = head_end + 4 + length
            if len(buffer) < body_end:
                return
            status = int(head[9:12])
            body = bytes(buffer[head_end + 4 : body_end])
            del buffer[:body_end]
            if not self.run.record(status, body):
                self.transport.close()
                return
            self.transport.write(self.request)

    def _fail(self, reason: str) -> None:
        self.run.tally.failed += 1
        self.transport.close()
        if not self.closed.done():
            self.closed.set_exception(RuntimeError(reason))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Run:
    """The clock and the tally shared by the connections of one measurement."""

    def __init__(self, loop: asyncio.AbstractEventLoop, warm_up: float, duration: float):
        self.loop = loop
        self.tally = Tally()
        now = loop.time()
        self.measure_from = now + warm_up
        self.stop_at = self.measure_from + duration

    def record(self, status: int, body: bytes) -> bool:
        """Count one answer; False when the measurement is over."""
        now = self.loop.time()
        if now >= self.measure_from:
            tally = self.tally
            if status == 202:
                tally.ok += 1
                tally.events += body.count(b'"uuid"')
            else:
                tally.failed += 1
                tally.statuses[status] = tally.statuses.get(status, 0) + 1
        return now < self.stop_at


async def _post_in_loop(
    url: str, headers: dict[str, str], body: bytes, clients: int, warm_up: float, duration: float
) -> Tally:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    header_lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n{header_lines}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    run = _Run(loop, warm_up, duration)
    connections = []
    for _ in range(clients):
        _, protocol = await loop.create_connection(lambda: _Connection(request, run), host, port)
        connections.append(protocol)
    # A server that stops answering fails the run instead of hanging it.
    await asyncio.wait_for(
        asyncio.gather(*(connection.closed for connection in connections)),
        timeout=warm_up + duration + 60,
    )
    return run.tally


def post_in_loop(
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    clients: int,
    warm_up: float,
    duration: float,
) -> dict[str, Any]:
    """``clients`` keep-alive connections POSTing ``body`` to ``url`` for ``duration``
    seconds after ``warm_up``: answers counted (202 as done, ``"uuid"`` as an event) and
    the CPU this process spent per request (the load generator's share of the machine)."""
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    run = uvloop.run if uvloop is not None else asyncio.run
    tally = run(_post_in_loop(url, headers, body, clients, warm_up, duration))
    cpu = time.process_time() - cpu_before
    wall = time.perf_counter() - wall_before
    answered = tally.ok + tally.failed
    # The warm-up's requests cost CPU too: spread the CPU over the wall time's share.
    measured_cpu = cpu * duration / wall if wall else cpu
    return {
        "seconds": round(duration, 2),
        "requests": tally.ok,
        "failed": tally.failed,
        "failed_statuses": tally.statuses,
        "requests_per_second": round(tally.ok / duration),
        "events_per_second": round(tally.events / duration),
        "client_cpu_microseconds_per_request": (
            round(measured_cpu / answered * 1e6) if answered else None
        ),
    }
