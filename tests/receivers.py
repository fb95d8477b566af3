"""Real aiohttp webhook receivers on loopback, for the delivery tests.

``Receiver`` runs an aiohttp server on 127.0.0.1 (a free port) in a background thread and
records every request it gets. Its paths behave like the targets a worker meets:

    /ok                      200 "ok"
    /status/<code>           that status, body "<code> <reason>" (500 → "500 Internal Server Error")
    /retry-after/<code>/<s>  <code> (429, 503) with "Retry-After: <s>"
    /redirect                302 to /ok (must not be followed)
    /hang                    never answers (until the client gives up)
    /slow/<ms>               200 after <ms> milliseconds
    /trickle                 200, then one byte every 0.2 s for a minute
    /huge                    200 with a 20 MiB body, streamed
    /gzip-bomb               200, "Content-Encoding: gzip": 2 MiB on the wire, 2 GiB inflated
    /non-utf8                200 with bytes that are not UTF-8
    /token                   token endpoint: {"username": "u", "password": "p"} → {"token": ...}
    /needs-token             200 only with "Authorization: Token <the token>", else 401
    /sometimes-500/<n>       500 for the first <n> requests of an event (by uuid), then 200

``overlaps`` lists event uuids that were being received twice at the same time (two workers
sending one event at once), which must never happen.
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus

from aiohttp import web

TOKEN = "tok-0123456789abcdef"
TOKEN_CREDENTIALS = {"username": "u", "password": "p"}
NON_UTF8_BODY = b"caf\xe9 \xff\xfe not utf-8 \x80"

_bomb_lock = threading.Lock()
_bomb: bytes | None = None


def gzip_bomb() -> bytes:
    """2 GiB of zeros, gzipped (about 2 MiB), built once per test session."""
    global _bomb
    with _bomb_lock:
        if _bomb is None:
            block = gzip.compress(b"\0" * (16 * 1024 * 1024), compresslevel=9)
            # Concatenated gzip members are one valid gzip stream: 128 × 16 MiB = 2 GiB.
            _bomb = block * 128
        return _bomb


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    method: str = "POST"
    # Every header line as sent (names lower-cased), duplicates included.
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    requests: list[Received] = field(default_factory=list)
    overlaps: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._active: collections.Counter[str] = collections.Counter()
        # Requests being answered right now, and the most there ever were at once, by path.
        self._in_progress: collections.Counter[str] = collections.Counter()
        self.max_in_progress: collections.Counter[str] = collections.Counter()
        self._seen: collections.Counter[str] = collections.Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="test-receiver", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("receiver did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    # --- what was received -------------------------------------------------------------------

    def received(self, path_prefix: str = "") -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def wait_for(self, count: int, path_prefix: str = "", timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.received(path_prefix)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        return self.received(path_prefix)

    def uuids(self, path_prefix: str = "") -> list[str]:
        return [
            r.header("webhook-id") or r.json["event"]["uuid"] for r in self.received(path_prefix)
        ]

    # --- server ------------------------------------------------------------------------------

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            # Handlers still hanging (/hang, /trickle) are cancelled, not left pending.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = Received(
            path=request.path,
            headers=dict(request.headers),
            body=body,
            at=time.time(),
            method=request.method,
            raw_headers=[
                (name.decode("latin-1").lower(), value.decode("latin-1"))
                for name, value in request.raw_headers
            ],
        )
        uuid = request.headers.get("webhook-id")
        if uuid is None:
            try:
                uuid = json.loads(body)["event"]["uuid"]
            except (ValueError, KeyError, TypeError):
                uuid = None
        with self._lock:
            self.requests.append(received)
            self._in_progress[request.path] += 1
            self.max_in_progress[request.path] = max(
                self.max_in_progress[request.path], self._in_progress[request.path]
            )
            if uuid:
                self._active[uuid] += 1
                self._seen[uuid] += 1
                if self._active[uuid] > 1:
                    self.overlaps.append(uuid)
                seen = self._seen[uuid]
            else:
                seen = 0
        try:
            return await self._answer(request, body, seen)
        finally:
            with self._lock:
                self._in_progress[request.path] -= 1
                if uuid:
                    self._active[uuid] -= 1

    async def _answer(self, request: web.Request, body: bytes, seen: int) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        kind = parts[0] if parts else "ok"
        if kind == "ok":
            return web.Response(text="ok")
        if kind == "status":
            code = int(parts[1])
            return web.Response(status=code, text=f"{code} {HTTPStatus(code).phrase}")
        if kind == "retry-after":
            code, seconds = int(parts[1]), parts[2]
            return web.Response(status=code, text="slow down", headers={"Retry-After": seconds})
        if kind == "redirect":
            raise web.HTTPFound(location="/ok")
        if kind == "hang":
            await asyncio.sleep(3600)
        if kind == "slow":
            await asyncio.sleep(int(parts[1]) / 1000)
            return web.Response(text="slow ok")
        if kind == "trickle":
            response = web.StreamResponse(status=200)
            await response.prepare(request)
            for _ in range(300):
                await response.write(b"x")
                await asyncio.sleep(0.2)
            return response
        if kind == "huge":
            response = web.StreamResponse(status=200)
            response.content_length = 20 * 1024 * 1024
            await response.prepare(request)
            chunk = b"A" * (1024 * 1024)
            for _ in range(20):
                await response.write(chunk)
            return response
        if kind == "gzip-bomb":
            payload = gzip_bomb()
            response = web.Response(body=payload, headers={"Content-Encoding": "gzip"})
            return response
        if kind == "non-utf8":
            return web.Response(body=NON_UTF8_BODY, content_type="application/octet-stream")
        if kind == "token":
            try:
                credentials = json.loads(body)
            except ValueError:
                credentials = None
            if credentials == TOKEN_CREDENTIALS:
                return web.json_response({"token": TOKEN})
            return web.json_response({"detail": "bad credentials"}, status=400)
        if kind == "needs-token":
            if request.headers.get("Authorization") == f"Token {TOKEN}":
                return web.Response(text="token ok")
            return web.Response(status=401, text="no token")
        if kind == "sometimes-500":
            if seen <= int(parts[1]):
                return web.Response(status=500, text="not yet")
            return web.Response(text="ok at last")
        return web.Response(status=404, text="unknown test path")


# --- Test data and running a worker in-process ---------------------------------------------

LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"
EVENT_TYPE = "package.created"


def make_webhook(url: str, **fields):
    """A webhook to ``url`` (fixed 60 s retries unless given)."""
    from ulak.models import Webhook

    fields.setdefault("event_type", EVENT_TYPE)
    fields.setdefault("retry_countdown_config", {"choice": "fixed", "kwargs": {"seconds": 60}})
    return Webhook.objects.create(target_url=url, **fields)


def make_events(webhook, count: int = 1, payload=None, **fields) -> list:
    """``count`` due events for ``webhook`` with the body of contract §3."""
    import uuid as uuid_module

    from django.utils import timezone

    from ulak.models import WebhookEvent

    now = timezone.now()
    events = []
    for index in range(count):
        event_uuid = uuid_module.uuid4()
        body = {
            "event": {"type": webhook.event_type, "uuid": event_uuid.hex},
            "payload": payload if payload is not None else {"index": index, "city": "İSTANBUL"},
        }
        values = {"next_attempt_at": now, **fields}
        events.append(
            WebhookEvent(
                webhook=webhook,
                uuid=event_uuid,
                request_payload=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                **values,
            )
        )
    return WebhookEvent.objects.bulk_create(events)


def deliver_due(**options) -> object:
    """Run a worker in this process until nothing is due; returns it (``.stats``)."""
    from ulak.delivery.worker import Worker

    max_seconds = options.pop("max_seconds", 30.0)
    worker = Worker(**options)
    asyncio.run(worker.deliver_due(max_seconds=max_seconds))
    return worker
