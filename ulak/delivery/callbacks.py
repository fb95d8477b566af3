"""A webhook's ``callback``: a dotted path run after each attempt (contract §1).

``callback(response, event_type, instance, payload)`` as dj-whisperer called it: ``response``
is an ``AttemptResponse`` (``status_code``, ``content``, ``text``, ``ok``, ``headers``),
``instance`` the event's business object when it can be loaded (else None) and ``payload``
the parsed body sent. Only paths listed in ``ULAK_CALLBACKS`` are ever imported: the API
checks them when a superuser sets one, and this checks again (the list may have shrunk).
A callback that raises is logged; the attempt is recorded regardless.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from django.db import connections
from django.utils.module_loading import import_string

from ulak.conf import setting
from ulak.delivery.outcome import AttemptOutcome, AttemptResponse

if TYPE_CHECKING:
    from ulak.queue import ClaimedEvent, WebhookSettings

logger = logging.getLogger(__name__)


def load_instance(content_type_id: int | None, object_id: int | None) -> Any:
    """The event's business object, or None (no object, a deleted one, an unknown model)."""
    if content_type_id is None or object_id is None:
        return None
    from django.contrib.contenttypes.models import ContentType

    try:
        content_type = ContentType.objects.get_for_id(content_type_id)
        return content_type.get_object_for_this_type(pk=object_id)
    except Exception:  # the object may be gone, or its model not installed here
        return None


def run_callback(
    webhook: WebhookSettings,
    event: ClaimedEvent,
    outcome: AttemptOutcome,
    *,
    close_connections: bool = False,
) -> bool:
    """Run the webhook's callback for one attempt; True when it ran without raising."""
    path = webhook.callback
    event_id = event.id
    try:
        if path not in set(setting("ULAK_CALLBACKS")):
            logger.warning(
                "callback %s of event %s is not in ULAK_CALLBACKS: not run", path, event_id
            )
            return False
        function = import_string(path)
        function(
            AttemptResponse(outcome, webhook.target_url),
            webhook.event_type,
            load_instance(event.content_type_id, event.object_id),
            json.loads(event.request_payload),
        )
        return True
    except Exception:
        logger.exception("callback %s failed for event %s", path, event_id)
        return False
    finally:
        if close_connections:
            # Callbacks run on a worker's helper thread: leave no connection open behind.
            connections.close_all()
