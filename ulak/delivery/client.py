"""The HTTP side of an attempt (contract §3): one aiohttp session, signed POSTs, bounded reads.

``Sender.send(webhook, body, event_uuid_hex)`` makes one attempt and always returns an
``AttemptOutcome``; it never raises for anything the target or the network does.

- One ``ClientSession`` per worker with keep-alive pools (the connector's per-host limit is the
  per-target limit), target safety from ``ulak.delivery.resolver`` (checked resolver and
  sockets), plus a check of IP-literal hosts, which aiohttp connects to without resolving.
- A total deadline per attempt (``config.timeout``), covering the token request, connecting,
  sending and reading the body: a target that trickles its answer cannot hold a slot longer.
- Redirects are not followed: a 3xx is a failed attempt.
- The body is read up to ``ULAK_RESPONSE_READ_LIMIT`` bytes. aiohttp's automatic decompression
  is off and gzip/deflate bodies are inflated here with the same cap on the output, so a
  gzip bomb costs at most the cap in memory.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import errno
import json
import logging
import ssl
import time
import zlib
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

import ulak
from ulak.delivery.outcome import AttemptOutcome, OutcomeKind
from ulak.delivery.resolver import check_request_host, create_connector, refusal_reason
from ulak.queue import WebhookSettings
from ulak.retry import parse_retry_after
from ulak.signing import Signer
from ulak.targets import TargetRefused

logger = logging.getLogger(__name__)

USER_AGENT = f"Ulak/{ulak.__version__}"
READ_CHUNK = 16 * 1024
# A token from config.auth is reused for this long (and dropped at once on a 401/403).
TOKEN_TTL_SECONDS = 300.0
RETRY_AFTER_STATUSES = frozenset({429, 503})


class TokenRequestFailed(Exception):
    """The token endpoint of ``config.auth`` did not give a token; the message is stored."""


@dataclass(frozen=True, slots=True)
class PreparedTarget:
    """Everything about a webhook that does not change from one attempt to the next."""

    webhook: WebhookSettings
    url: URL
    base_headers: dict[str, str]
    signer: Signer | None
    token_auth: dict[str, Any] | None
    timeout: float
    # aiohttp's deadline for the whole request: connecting, sending and reading the body.
    client_timeout: aiohttp.ClientTimeout


def _prepare(webhook: WebhookSettings) -> PreparedTarget:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "gzip, deflate",
        "X-Whisperer-Event": webhook.event_type,
    }
    auth = webhook.auth
    token_auth = None
    if auth and auth.get("auth_type") == "basic":
        credentials = f"{auth.get('username') or ''}:{auth.get('password') or ''}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    elif auth and auth.get("auth_type") == "token":
        token_auth = auth
    return PreparedTarget(
        webhook=webhook,
        url=URL(webhook.target_url),
        base_headers=headers,
        signer=Signer(webhook.secret) if webhook.secret else None,
        token_auth=token_auth,
        timeout=webhook.timeout,
        client_timeout=aiohttp.ClientTimeout(total=webhook.timeout),
    )


def describe_network_error(error: BaseException) -> str:
    """One line for ``response_content`` when no HTTP answer came; no internal details."""
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return "DNS lookup failed"
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return "TLS error: certificate verification failed"
    if isinstance(error, aiohttp.ClientSSLError | ssl.SSLError):
        return "TLS error"
    if isinstance(error, aiohttp.ClientConnectorError):
        code = getattr(error.os_error, "errno", None)
        if code == errno.ECONNREFUSED:
            return "Connection refused"
        if code in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "Network unreachable"
        return "Connection failed"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "Connection closed by the target"
    if isinstance(error, aiohttp.ClientPayloadError):
        return "Response body could not be read"
    if isinstance(error, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return "Invalid target URL"
    if isinstance(error, aiohttp.ClientResponseError):
        return "Invalid HTTP response"
    if isinstance(error, ConnectionResetError) or getattr(error, "errno", None) == errno.ECONNRESET:
        return "Connection reset by the target"
    if isinstance(error, aiohttp.ClientError | OSError):
        return "Connection error"
    return "Delivery error"


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read at most ``limit`` bytes of body (after gzip/deflate decoding) without more memory."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    content = response.content
    if encoding in ("gzip", "x-gzip", "deflate"):
        wbits = 16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS
        decoder = zlib.decompressobj(wbits)
        parts: list[bytes] = []
        produced = 0
        raw_read = 0
        try:
            # The raw input is bounded too: a body that inflates to nothing must still stop.
            while produced < limit and raw_read < limit:
                chunk = await content.read(min(READ_CHUNK, limit - raw_read))
                if not chunk:
                    # No flush(): it would inflate whatever is left without a cap.
                    break
                raw_read += len(chunk)
                try:
                    data = decoder.decompress(chunk, limit - produced)
                except zlib.error:
                    if encoding != "deflate" or parts:
                        raise
                    # "deflate" is often sent raw, without the zlib header.
                    decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                    data = decoder.decompress(chunk, limit - produced)
                parts.append(data)
                produced += len(data)
        except zlib.error:
            # Not what the header said: keep what was decoded (the status is what counts).
            pass
        return b"".join(parts)[:limit]
    # Identity (or an encoding Ulak does not decode): the raw bytes, capped.
    first = await content.read(limit)
    if not first or len(first) >= limit or content.at_eof():
        return first
    parts = [first]
    remaining = limit - len(first)
    while remaining > 0:
        chunk = await content.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


@dataclass(slots=True)
class _CachedToken:
    token: str
    expires_at: float


class Sender:
    """Sends attempts over one aiohttp session. Use ``async with Sender(...) as sender``."""

    def __init__(
        self,
        *,
        allowed_networks: Any = (),
        target_concurrency: int = 64,
        total_concurrency: int = 1024,
        read_limit: int = 64 * 1024,
        retry_after_cap: float = 3600.0,
    ):
        self.allowed_networks = allowed_networks
        self.target_concurrency = target_concurrency
        self.total_concurrency = total_concurrency
        self.read_limit = read_limit
        self.retry_after_cap = retry_after_cap
        self._session: aiohttp.ClientSession | None = None
        self._prepared: dict[int, PreparedTarget] = {}
        self._checked_hosts: dict[str, str | None] = {}
        self._tokens: dict[str, _CachedToken] = {}
        self._token_locks: dict[str, asyncio.Lock] = {}

    async def __aenter__(self) -> Sender:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        connector = create_connector(
            self.allowed_networks,
            limit=self.total_concurrency,
            limit_per_host=self.target_concurrency,
            ttl_dns_cache=60,
            keepalive_timeout=30,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # The deadline is ours (asyncio.timeout around the whole attempt).
            timeout=aiohttp.ClientTimeout(total=None),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def prepared(self, webhook: WebhookSettings) -> PreparedTarget:
        prepared = self._prepared.get(webhook.id)
        if prepared is None or prepared.webhook is not webhook:
            prepared = _prepare(webhook)
            self._prepared[webhook.id] = prepared
        return prepared

    def _check_host(self, url: URL) -> None:
        # aiohttp does not ask the resolver about IP literals: judge them here (cached).
        host = url.raw_host or ""
        if host not in self._checked_hosts:
            try:
                check_request_host(host, self.allowed_networks)
                self._checked_hosts[host] = None
            except TargetRefused as error:
                self._checked_hosts[host] = str(error)
        reason = self._checked_hosts[host]
        if reason is not None:
            raise TargetRefused(reason)

    async def send(
        self, webhook: WebhookSettings, body: bytes, event_uuid_hex: str
    ) -> AttemptOutcome:
        """POST ``body`` to the webhook's target once; the outcome, whatever happened."""
        assert self._session is not None, "Sender is not open"
        started_at = datetime.datetime.now(datetime.UTC)
        started = time.perf_counter()
        try:
            prepared = self.prepared(webhook)
        except ValueError:  # a target_url that does not parse (validated on write, but...)
            return self._failure(
                started_at, started, OutcomeKind.FAILED_NETWORK, "Invalid target URL"
            )
        try:
            self._check_host(prepared.url)
            client_timeout = prepared.client_timeout
            if prepared.token_auth is None:
                headers = self._headers(prepared, body, event_uuid_hex, started_at)
            else:
                # The token request counts in the attempt's deadline.
                async with asyncio.timeout(prepared.timeout):
                    token = await self._token(prepared.token_auth)
                remaining = prepared.timeout - (time.perf_counter() - started)
                client_timeout = aiohttp.ClientTimeout(total=max(remaining, 0.001))
                headers = self._headers(prepared, body, event_uuid_hex, started_at, token)
            # aiohttp's total timeout runs until the response is released: the deadline covers
            # connecting, sending and reading the body (a trickling answer cannot outlast it).
            async with self._session.post(
                prepared.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=client_timeout,
            ) as response:
                status = response.status
                content = await read_capped(response, self.read_limit)
                if not response.content.at_eof():
                    # Unread body left: this connection cannot be reused.
                    response.close()
                retry_after = None
                if status in RETRY_AFTER_STATUSES:
                    retry_after = parse_retry_after(
                        response.headers.get("Retry-After"), time.time(), self.retry_after_cap
                    )
                response_headers = response.headers
        except TimeoutError:
            return self._failure(
                started_at,
                started,
                OutcomeKind.FAILED_NETWORK,
                f"Timed out after {prepared.timeout:g} s",
            )
        except TargetRefused as error:
            return self._failure(started_at, started, OutcomeKind.REFUSED, str(error))
        except TokenRequestFailed as error:
            return self._failure(started_at, started, OutcomeKind.FAILED_NETWORK, str(error))
        except (aiohttp.ClientError, OSError, ValueError) as error:
            reason = refusal_reason(error)
            if reason is not None:
                return self._failure(started_at, started, OutcomeKind.REFUSED, reason)
            logger.debug("attempt to webhook %s failed: %r", webhook.id, error)
            return self._failure(
                started_at, started, OutcomeKind.FAILED_NETWORK, describe_network_error(error)
            )
        duration = time.perf_counter() - started
        if 200 <= status < 300:
            kind = OutcomeKind.DELIVERED
        else:
            kind = OutcomeKind.FAILED_HTTP
            if status in (401, 403) and prepared.token_auth is not None:
                self._tokens.pop(self._token_key(prepared.token_auth), None)
        return AttemptOutcome(
            started_at=started_at,
            duration=duration,
            kind=kind,
            status=status,
            body=content,
            retry_after=retry_after,
            headers=response_headers,
        )

    @staticmethod
    def _failure(
        started_at: datetime.datetime, started: float, kind: OutcomeKind, reason: str
    ) -> AttemptOutcome:
        return AttemptOutcome(
            started_at=started_at,
            duration=time.perf_counter() - started,
            kind=kind,
            error=reason,
        )

    @staticmethod
    def _headers(
        prepared: PreparedTarget,
        body: bytes,
        event_uuid_hex: str,
        started_at: datetime.datetime,
        token: str | None = None,
    ) -> Any:
        headers = dict(prepared.base_headers)
        if token is not None:
            headers["Authorization"] = "Token " + token
        if prepared.signer is not None:
            headers.update(
                prepared.signer.headers(body, event_uuid_hex, int(started_at.timestamp()))
            )
        additional = prepared.webhook.additional_headers
        if not additional:
            return headers
        # additional_headers come last and win, whatever the case of their names.
        merged = CIMultiDict(headers)
        merged.update(additional)
        return merged

    # Token authentication (config.auth = {"auth_type": "token", "url", "username", "password"})

    @staticmethod
    def _token_key(auth: dict[str, Any]) -> str:
        return json.dumps(auth, sort_keys=True, default=str)

    async def _token(self, auth: dict[str, Any]) -> str:
        """A token from ``auth["url"]``: POSTed the credentials (JSON), cached, shared by attempts."""
        key = self._token_key(auth)
        cached = self._tokens.get(key)
        if cached is not None and cached.expires_at > time.monotonic():
            return cached.token
        lock = self._token_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_at > time.monotonic():
                return cached.token
            token = await self._fetch_token(auth)
            self._tokens[key] = _CachedToken(token, time.monotonic() + TOKEN_TTL_SECONDS)
            return token

    async def _fetch_token(self, auth: dict[str, Any]) -> str:
        assert self._session is not None
        url = auth.get("url")
        if not url:
            raise TokenRequestFailed("Token request failed: config.auth has no url")
        try:
            token_url = URL(str(url))
        except ValueError:
            raise TokenRequestFailed("Token request failed: invalid url") from None
        self._check_host(token_url)
        # Every key but auth_type and url is sent: username, password and whatever else the
        # token endpoint needs (client_id, scope, ...).
        credentials = {k: v for k, v in auth.items() if k not in ("auth_type", "url")}
        try:
            async with self._session.post(
                token_url,
                json=credentials,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                allow_redirects=False,
            ) as response:
                raw = await read_capped(response, self.read_limit)
                status = response.status
        except (aiohttp.ClientError, OSError, ValueError) as error:
            reason = refusal_reason(error)
            if reason is not None:
                raise TargetRefused(reason) from error
            raise TokenRequestFailed(
                "Token request failed: " + describe_network_error(error)
            ) from error
        if not 200 <= status < 300:
            raise TokenRequestFailed(f"Token request failed: HTTP {status}")
        try:
            answer = json.loads(raw)
        except ValueError:
            raise TokenRequestFailed("Token request failed: the answer is not JSON") from None
        if isinstance(answer, dict):
            for name in ("token", "key", "access_token", "access"):
                if isinstance(answer.get(name), str) and answer[name]:
                    return answer[name]
        raise TokenRequestFailed("Token request failed: no token in the answer")
