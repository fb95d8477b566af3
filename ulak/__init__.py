"""Ulak: outgoing webhooks for order management systems.

``ulak.publish`` and ``ulak.publish_many`` are imported lazily so that importing the
package (for example from ``INSTALLED_APPS``) does not need Django to be set up.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "publish", "publish_many", "deliver_event"]


def __getattr__(name: str) -> Any:
    if name in {"publish", "publish_many", "deliver_event"}:
        from ulak import publishing

        return getattr(publishing, name)
    raise AttributeError(f"module 'ulak' has no attribute {name!r}")
