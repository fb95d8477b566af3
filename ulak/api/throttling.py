"""API throttling per token (contract §6): off by default, 429 with ``Retry-After`` when on.

``ULAK_THROTTLE_RATE`` (for example ``"100/second"``, ``"1000/hour"``, ``"50/10s"``) turns it
on; None (the default) makes the throttle a no-op that touches nothing. Each API token has
its own allowance (a request authenticated some other way counts against its user, an
anonymous one against its address).

The algorithm is GCRA (a token bucket kept as one timestamp): up to N requests may come at
once, then one every period/N; state is one float per token in Django's cache. The default
cache is per process: with several ``ulak api`` processes, point ``CACHES`` at a shared cache
(Redis, Memcached or the database cache) for one allowance across all of them.
"""

from __future__ import annotations

import functools
import math
import re
import time

from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from rest_framework.throttling import BaseThrottle

from ulak.conf import setting

_RATE = re.compile(
    r"\s*(?P<count>\d+)\s*/\s*(?P<multiple>\d*)\s*"
    r"(?P<unit>s|sec|second|seconds|m|min|minute|minutes|h|hour|hours|d|day|days)\s*",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
CACHE_PREFIX = "ulak-throttle:"


@functools.lru_cache(maxsize=16)
def parse_rate(rate: str) -> tuple[int, float]:
    """``"100/second"`` → (100, 1.0); ``"50/10s"`` → (50, 10.0). ImproperlyConfigured if bad."""
    match = _RATE.fullmatch(rate)
    if match is None or int(match["count"]) < 1 or match["multiple"] == "0":
        raise ImproperlyConfigured(
            f"ULAK_THROTTLE_RATE {rate!r} is not a rate such as '100/second' or '1000/hour'"
        )
    multiple = int(match["multiple"] or 1)
    return int(match["count"]), float(multiple * _UNIT_SECONDS[match["unit"][0].lower()])


class TokenRateThrottle(BaseThrottle):
    """At most N requests per period per API token, as ``ULAK_THROTTLE_RATE`` says."""

    timer = staticmethod(time.time)

    def __init__(self) -> None:
        self.retry_after: int | None = None

    def get_cache_key(self, request) -> str:
        token = getattr(request, "auth", None)
        token_id = getattr(token, "pk", None)
        if token_id is not None:
            return f"{CACHE_PREFIX}token:{token_id}"
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return f"{CACHE_PREFIX}user:{user.pk}"
        return f"{CACHE_PREFIX}address:{self.get_ident(request)}"

    def allow_request(self, request, view) -> bool:
        rate = setting("ULAK_THROTTLE_RATE")
        if not rate:
            return True
        count, period = parse_rate(rate)
        interval = period / count
        key = self.get_cache_key(request)
        now = self.timer()
        # The theoretical arrival time: when the bucket would be empty again.
        arrival = max(float(cache.get(key) or 0.0), now)
        next_arrival = arrival + interval
        if next_arrival - now > period:
            # Over the allowance: a slot frees up when arrival - now falls to period - interval.
            self.retry_after = max(1, math.ceil(arrival - now - (period - interval)))
            return False
        cache.set(key, next_arrival, timeout=math.ceil(period) + 1)
        return True

    def wait(self) -> int | None:
        return self.retry_after
