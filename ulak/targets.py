"""Target safety (contract §6). STUB: the target-safety issue replaces this module.

Pure: no Django. Interface others rely on:
- ``class TargetRefused(Exception)``: ``str(error)`` is a plain one-line reason.
- ``check_target_url(url, *, resolve, allowed_networks) -> None``: raises ``TargetRefused``
  (registration: scheme, userinfo, host, IP literals, localhost, resolved addresses).
  ``resolve(host) -> list[str]`` returns addresses, raises ``OSError`` when the name does not
  resolve (then the URL is accepted and judged at delivery).
- ``check_address(ip: str, allowed_networks) -> None``: raises ``TargetRefused``.
- ``parse_networks(value: str | list[str]) -> tuple[ip_network, ...]``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable


class TargetRefused(Exception):
    """A target Ulak will not contact; the message is safe to show and store."""


def parse_networks(value) -> tuple:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value or ())


def check_address(ip: str, allowed_networks: Iterable = ()) -> None:
    return None


def check_target_url(
    url: str, *, resolve: Callable[[str], list[str]] | None = None, allowed_networks=()
) -> None:
    return None
