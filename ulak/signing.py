"""Request signatures (contract §3): pure code, no Django, no clock.

Two schemes are sent side by side when a webhook has a secret:

- dj-whisperer's ``X-Whisperer-Signature: sha256=<hex HMAC-SHA256(secret, body)>``, so receivers
  written for the library keep working;
- Standard Webhooks (https://www.standardwebhooks.com): ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``, where the key is
  the base64-decoded part of a ``whsec_…`` secret, or else the UTF-8 bytes of the secret.

The bytes signed are exactly the bytes sent. ``Signer`` prepares the keys once per webhook so
the hot path only computes the two HMACs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field

WHISPERER_SIGNATURE_HEADER = "X-Whisperer-Signature"
WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"
STANDARD_WEBHOOKS_PREFIX = "whsec_"


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key of the Standard Webhooks scheme for ``secret``.

    A ``whsec_`` secret carries its key base64-encoded after the prefix; any other secret (or a
    ``whsec_`` one whose rest is not valid base64) is used as its UTF-8 bytes.
    """
    if secret.startswith(STANDARD_WEBHOOKS_PREFIX):
        try:
            return base64.b64decode(secret[len(STANDARD_WEBHOOKS_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode("utf-8")


def whisperer_signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the body keyed with the secret's UTF-8 bytes."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def standard_webhooks_signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64>``: HMAC-SHA256 of ``"{id}.{timestamp}.{body}"``."""
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode(), hashlib.sha256)
    mac.update(body)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


@dataclass(frozen=True)
class Signer:
    """Signs request bodies for one secret (keys derived once, reused for every attempt)."""

    secret: str
    whisperer_key: bytes = field(init=False, repr=False)
    standard_key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "whisperer_key", self.secret.encode("utf-8"))
        object.__setattr__(self, "standard_key", standard_webhooks_key(self.secret))

    def __repr__(self) -> str:  # never show the secret in logs or tracebacks
        return "Signer(secret='****')"

    def headers(self, body: bytes, message_id: str, timestamp: int) -> dict[str, str]:
        """The four signature headers for ``body`` sent as message ``message_id`` at ``timestamp``."""
        # hmac.digest is the one-shot C path: several times cheaper than hmac.new per call.
        whisperer = hmac.digest(self.whisperer_key, body, "sha256").hex()
        signed = f"{message_id}.{timestamp}.".encode() + body
        standard = base64.b64encode(hmac.digest(self.standard_key, signed, "sha256"))
        return {
            WHISPERER_SIGNATURE_HEADER: "sha256=" + whisperer,
            WEBHOOK_ID_HEADER: message_id,
            WEBHOOK_TIMESTAMP_HEADER: str(timestamp),
            WEBHOOK_SIGNATURE_HEADER: "v1," + standard.decode("ascii"),
        }


def signature_headers(secret: str | None, body: bytes, message_id: str, timestamp: int) -> dict:
    """The signature headers for one request; none when there is no secret."""
    if not secret:
        return {}
    return Signer(secret).headers(body, message_id, timestamp)
