"""Signatures of contract §3, checked against hmac and the standardwebhooks package."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from ulak.signing import (
    Signer,
    signature_headers,
    standard_webhooks_key,
    standard_webhooks_signature,
    whisperer_signature,
)

BODY = '{"event":{"type":"package.created","uuid":"0f8fad5b2d9d4f1a9c3e5b7a1d2c3e4f"},"payload":{"city":"İSTANBUL"}}'.encode()
MESSAGE_ID = "0f8fad5b2d9d4f1a9c3e5b7a1d2c3e4f"
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def test_whisperer_signature_is_the_hex_hmac_of_the_body():
    expected = hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()
    assert whisperer_signature("s3cret", BODY) == "sha256=" + expected


def test_standard_webhooks_key_decodes_whsec_secrets_and_keeps_others_as_utf8():
    assert standard_webhooks_key(WHSEC) == b"0123456789abcdef0123456789abcdef"
    assert standard_webhooks_key("plain-sécret") == "plain-sécret".encode()
    # A whsec_ prefix followed by something that is not base64 is just a plain secret.
    assert standard_webhooks_key("whsec_not base64!") == b"whsec_not base64!"


@pytest.mark.parametrize("secret", [WHSEC, "plain secret with ü"])
def test_signer_headers_verify_with_the_standardwebhooks_package(secret):
    # verify() checks the timestamp against the clock, so sign "now".
    timestamp = int(time.time())
    headers = Signer(secret).headers(BODY, MESSAGE_ID, timestamp)
    assert headers["webhook-id"] == MESSAGE_ID
    assert headers["webhook-timestamp"] == str(timestamp)
    # The package takes whsec_ secrets only: give it the same key bytes.
    key = standard_webhooks_key(secret)
    verifier = StandardWebhook("whsec_" + base64.b64encode(key).decode())
    payload = verifier.verify(BODY, headers)
    assert payload["payload"]["city"] == "İSTANBUL"
    expected_hex = hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    assert headers["X-Whisperer-Signature"] == "sha256=" + expected_hex


def test_standard_webhooks_signature_fails_for_another_body():
    headers = Signer(WHSEC).headers(BODY, MESSAGE_ID, int(time.time()))
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(WHSEC).verify(BODY + b" ", headers)


def test_standard_webhooks_signature_layout():
    signature = standard_webhooks_signature(b"key", "msg_1", 42, b"{}")
    expected = base64.b64encode(hmac.new(b"key", b"msg_1.42.{}", hashlib.sha256).digest()).decode()
    assert signature == "v1," + expected


def test_no_secret_means_no_signature_headers():
    assert signature_headers(None, BODY, MESSAGE_ID, 1) == {}
    assert signature_headers("", BODY, MESSAGE_ID, 1) == {}
    assert set(signature_headers("x", BODY, MESSAGE_ID, 1)) == {
        "X-Whisperer-Signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }


def test_signer_never_shows_its_secret():
    assert "hunter2" not in repr(Signer("hunter2"))
