"""A fast webhook receiver for the benchmarks, in a process of its own.

    python -m bench.receiver --port 18080 [--host 127.0.0.1]

- ``POST`` to any path: reads the body, answers 200 ``ok`` and counts it.
- ``GET /stats``: ``{"count", "bytes", "first_at", "last_at"}`` (unix seconds of the first
  and last POST since the last reset, or null).
- ``GET /reset``: zeroes the counters and answers the old ones.

aiohttp on uvloop with access logs off, so the receiver costs as little CPU as it can and
the figures measure the sender. It stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from typing import Any

from aiohttp import web

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is not on every platform
    uvloop = None


class Counters:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.bytes = 0
        self.first_at: float | None = None
        self.last_at: float | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "bytes": self.bytes,
            "first_at": self.first_at,
            "last_at": self.last_at,
        }


def build_application(counters: Counters) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        if counters.first_at is None:
            counters.first_at = now
        counters.last_at = now
        counters.count += 1
        counters.bytes += len(body)
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(counters.snapshot())

    async def reset(request: web.Request) -> web.Response:
        old = counters.snapshot()
        counters.reset()
        return web.json_response(old)

    application = web.Application(client_max_size=32 * 1024 * 1024)
    application.router.add_get("/stats", stats)
    application.router.add_get("/reset", reset)
    application.router.add_post("/{tail:.*}", receive)
    return application


async def serve(application: web.Application, host: str, ports: list[int]) -> None:
    """Serve ``application`` on each of ``ports`` until SIGTERM or SIGINT."""
    runner = web.AppRunner(application, access_log=None, handle_signals=False)
    await runner.setup()
    for port in ports:
        await web.TCPSite(runner, host, port, backlog=4096, reuse_address=True).start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="Fast counting webhook receiver.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    if uvloop is not None:
        uvloop.run(serve(build_application(Counters()), options.host, [options.port]))
    else:
        asyncio.run(serve(build_application(Counters()), options.host, [options.port]))


if __name__ == "__main__":
    main()
