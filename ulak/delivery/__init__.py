"""Delivery: the worker, its HTTP sender, and one-off attempts (the API's retry).

``attempt_event_now`` is imported lazily so that importing ``ulak.delivery`` needs neither
aiohttp nor a configured Django.
"""

from __future__ import annotations

from typing import Any

__all__ = ["attempt_event_now", "EventBusy", "EventNotFound", "AttemptResult"]


def __getattr__(name: str) -> Any:
    if name in {"attempt_event_now", "EventBusy", "EventNotFound"}:
        from ulak.delivery import attempt

        return getattr(attempt, name)
    if name == "AttemptResult":
        from ulak.delivery.outcome import AttemptResult

        return AttemptResult
    raise AttributeError(f"module 'ulak.delivery' has no attribute {name!r}")
