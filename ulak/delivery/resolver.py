"""Target safety at delivery (contract §6): only checked addresses are ever connected to.

``SafeResolver(allowed_networks=...)`` is an ``aiohttp.abc.AbstractResolver``. It resolves a
host once, refuses the whole host (raising ``ulak.targets.TargetRefused``) when ANY of its
addresses is refused, and otherwise returns exactly the addresses it checked, so aiohttp
connects only to them: a DNS server that answers a public address to a first lookup and a
private one to the next (DNS rebinding) cannot slip a private address in between the check
and the connection, because there is no second lookup. ``TargetRefused`` is not an
``OSError``, so aiohttp lets it through unwrapped and the worker can record its message.

IP-literal hosts: aiohttp does NOT call the resolver for a host that looks like an IP address
(``127.0.0.1``, ``[::ffff:7f00:1]``; see ``TCPConnector._resolve_host``), and it refuses the
legacy numeric forms (``127.1``, ``2130706433``) itself. So the worker must also:

1. call ``check_request_host(url.raw_host, allowed_networks)`` before sending (raises
   ``TargetRefused`` with a plain message: record it as a failed attempt), and
2. for defence in depth, give its connector ``socket_factory=make_socket_factory(allowed)``,
   which checks the address of every socket aiohttp actually connects, whatever the path.
   A refusal there surfaces as ``aiohttp.ClientConnectorError`` whose ``os_error`` is an
   ``AddressRefusedError``; ``refusal_reason(error)`` turns either kind into the plain reason.

``create_connector(allowed_networks, **kwargs)`` builds a ``TCPConnector`` with both.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from ulak.targets import (
    Network,
    TargetRefused,
    describe_refused_address,
    judge_host_without_dns,
    normalize_host,
    parse_ip_literal,
    parse_networks,
)

logger = logging.getLogger(__name__)

AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]
SocketFactory = Callable[[AddrInfo], socket.socket]


class AddressRefusedError(OSError):
    """Raised by the socket factory for a refused address (aiohttp wraps OSErrors)."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EACCES, reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def _networks(allowed_networks: str | Iterable[str | Network] | None) -> tuple[Network, ...]:
    return parse_networks(allowed_networks)


def check_request_host(
    host: str | None, allowed_networks: str | Iterable[str | Network] | None = ()
) -> None:
    """Judge an IP-literal host (any spelling) or a ``localhost`` name without DNS.

    Call it with the request URL's host before sending: aiohttp connects to IP literals
    without asking the resolver. Names pass (``SafeResolver`` judges them when resolving).
    """
    if not host:
        raise TargetRefused("target_url has no host")
    judge_host_without_dns(normalize_host(host), _networks(allowed_networks))


class SafeResolver(AbstractResolver):
    """An aiohttp resolver that returns only addresses Ulak may contact.

    ``resolver`` is the resolver asked for the addresses (aiohttp's default, created on
    first use, when None).
    """

    def __init__(
        self,
        allowed_networks: str | Iterable[str | Network] | None = (),
        *,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.allowed_networks = _networks(allowed_networks)
        self._resolver = resolver

    def _underlying(self) -> AbstractResolver:
        # Created lazily: aiohttp's threaded resolver wants the running event loop.
        if self._resolver is None:
            self._resolver = DefaultResolver()
        return self._resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        normalized = normalize_host(host)
        try:
            literal = parse_ip_literal(normalized)
        except ValueError:
            raise TargetRefused("target_url host is not a valid IP address") from None
        if literal is not None:
            # An odd spelling aiohttp did not recognise as an address (0x7f.1, 0177.1):
            # judge it and connect to exactly the address it spells, without DNS.
            description = describe_refused_address(literal, self.allowed_networks)
            if description is not None:
                raise self._refuse(host, f"target is {description}, which is not allowed")
            literal_family = socket.AF_INET if literal.version == 4 else socket.AF_INET6
            return [
                ResolveResult(
                    hostname=host,
                    host=str(literal),
                    port=port,
                    family=literal_family,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            ]
        results = await self._underlying().resolve(host, port, family)
        for result in results:
            description = describe_refused_address(result["host"], self.allowed_networks)
            if description is not None:
                # One refused address refuses the whole host: connecting to "the others"
                # would still let a name that points inside the network be probed.
                raise self._refuse(host, f"target resolves to {description}, which is not allowed")
        return list(results)

    @staticmethod
    def _refuse(host: str, reason: str) -> TargetRefused:
        logger.info("refused target host %s: %s", host[:255], reason)
        return TargetRefused(reason)

    async def close(self) -> None:
        if self._resolver is not None:
            await self._resolver.close()


def make_socket_factory(
    allowed_networks: str | Iterable[str | Network] | None = (),
    *,
    create_socket: SocketFactory | None = None,
) -> SocketFactory:
    """A ``TCPConnector(socket_factory=...)`` that refuses to connect to refused addresses.

    This is the last check, on the address the socket is actually connected to, so it also
    covers IP literals, for which aiohttp skips the resolver. ``create_socket`` makes the
    socket once the address passed (a plain ``socket.socket`` by default).
    """
    networks = _networks(allowed_networks)

    def create_checked_socket(addr_info: AddrInfo) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        description = describe_refused_address(str(sockaddr[0]), networks)
        if description is not None:
            reason = f"target address is {description}, which is not allowed"
            logger.info("refused connection to %s: %s", sockaddr[0], reason)
            raise AddressRefusedError(reason)
        if create_socket is not None:
            return create_socket(addr_info)
        return socket.socket(family=family, type=type_, proto=proto)

    return create_checked_socket


def create_connector(
    allowed_networks: str | Iterable[str | Network] | None = (), **kwargs: Any
) -> aiohttp.TCPConnector:
    """A ``TCPConnector`` with ``SafeResolver`` and the checking socket factory (in a loop)."""
    networks = _networks(allowed_networks)
    kwargs.setdefault("resolver", SafeResolver(networks))
    kwargs.setdefault("socket_factory", make_socket_factory(networks))
    return aiohttp.TCPConnector(**kwargs)


def refusal_reason(error: BaseException) -> str | None:
    """The plain reason when ``error`` (or what it wraps) is a safety refusal, else None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TargetRefused):
            return str(current)
        if isinstance(current, AddressRefusedError):
            return current.reason
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, AddressRefusedError):
            return os_error.reason
        current = current.__cause__ or current.__context__
    return None
