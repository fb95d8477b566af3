"""A DNS resolver for aiohttp that refuses unsafe targets. STUB: the target-safety issue
replaces it.

Interface the worker relies on: ``SafeResolver(allowed_networks=...)`` is an
``aiohttp.abc.AbstractResolver``; when any address of a host is refused, ``resolve`` raises
``ulak.targets.TargetRefused`` (the worker records it as a failed attempt with that reason).
"""

from __future__ import annotations

from aiohttp.resolver import DefaultResolver


class SafeResolver(DefaultResolver):
    def __init__(self, allowed_networks=(), **kwargs):
        super().__init__(**kwargs)
        self.allowed_networks = allowed_networks
