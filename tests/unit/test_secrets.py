"""Webhook secrets at rest, pure: ``ulak.secrets`` (Fernet, key rotation, masking)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.fernet import Fernet

from ulak.secrets import (
    PREFIX,
    decrypt_secret,
    derive_fernet_key,
    encrypt_secret,
    is_encrypted,
    is_encrypted_with_newest,
    mask_secret,
    reencrypt_secret,
)

OLD_KEY = "old passphrase that was in use"
NEW_KEY = Fernet.generate_key().decode()
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_a_secret_round_trips_and_is_not_readable_encrypted():
    stored = encrypt_secret(SECRET, [OLD_KEY])
    assert stored.startswith(PREFIX) and is_encrypted(stored)
    assert SECRET not in stored
    assert "MfKQ9r8G" not in stored
    assert decrypt_secret(stored, [OLD_KEY]) == SECRET


def test_each_encryption_is_fresh():
    assert encrypt_secret(SECRET, [OLD_KEY]) != encrypt_secret(SECRET, [OLD_KEY])


def test_unicode_and_prefix_like_secrets_round_trip():
    for secret in ["\u015fifre-\u00e7\u00f6z\u00fcl\u00fc\u011f\u00fc", PREFIX + "looks encrypted"]:
        assert decrypt_secret(encrypt_secret(secret, [NEW_KEY]), [NEW_KEY]) == secret


def test_old_keys_still_decrypt_after_rotation():
    stored_with_old = encrypt_secret(SECRET, [OLD_KEY])
    keys = [NEW_KEY, OLD_KEY]  # the new key in front
    assert decrypt_secret(stored_with_old, keys) == SECRET
    assert not is_encrypted_with_newest(stored_with_old, keys)
    # New secrets are encrypted with the newest key.
    stored_with_new = encrypt_secret(SECRET, keys)
    assert decrypt_secret(stored_with_new, [NEW_KEY]) == SECRET
    assert is_encrypted_with_newest(stored_with_new, keys)
    with pytest.raises(ValueError):
        decrypt_secret(stored_with_new, [OLD_KEY])


def test_reencrypting_moves_a_secret_to_the_newest_key():
    stored = encrypt_secret(SECRET, [OLD_KEY])
    rotated = reencrypt_secret(stored, [NEW_KEY, OLD_KEY])
    assert decrypt_secret(rotated, [NEW_KEY]) == SECRET  # the old key is no longer needed
    with pytest.raises(ValueError):
        decrypt_secret(rotated, [OLD_KEY])


def test_a_legacy_plaintext_secret_is_read_as_it_is_and_encrypted_on_rotation():
    assert decrypt_secret("legacy-secret", [NEW_KEY]) == "legacy-secret"
    rotated = reencrypt_secret("legacy-secret", [NEW_KEY])
    assert is_encrypted(rotated) and "legacy-secret" not in rotated
    assert decrypt_secret(rotated, [NEW_KEY]) == "legacy-secret"


def test_a_missing_key_or_tampering_is_a_plain_error_without_the_secret():
    stored = encrypt_secret(SECRET, [OLD_KEY])
    with pytest.raises(ValueError, match="cannot be decrypted with ULAK_SECRET_KEYS") as error:
        decrypt_secret(stored, [NEW_KEY])
    assert SECRET not in str(error.value)
    tampered = stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:]
    with pytest.raises(ValueError, match="cannot be decrypted"):
        decrypt_secret(tampered, [OLD_KEY])


def test_a_fernet_key_is_used_as_it_is():
    stored = encrypt_secret(SECRET, [NEW_KEY])
    token = stored[len(PREFIX) :].encode()
    assert Fernet(NEW_KEY.encode()).decrypt(token).decode() == SECRET


def test_a_passphrase_is_derived_under_a_label_of_its_own():
    key = derive_fernet_key(OLD_KEY)
    assert len(base64.urlsafe_b64decode(key)) == 32
    # Not the bare SHA-256 of the passphrase (Django's SECRET_KEY, which others may hash too).
    assert key != base64.urlsafe_b64encode(hashlib.sha256(OLD_KEY.encode()).digest())
    # 44 characters that are not URL-safe base64 are a passphrase, not a Fernet key.
    lookalike = "!" * 43 + "="
    assert derive_fernet_key(lookalike) != lookalike.encode()
    assert decrypt_secret(encrypt_secret(SECRET, [lookalike]), [lookalike]) == SECRET


def test_unusable_keys_are_refused():
    with pytest.raises(ValueError):
        encrypt_secret(SECRET, [])
    with pytest.raises(ValueError):
        encrypt_secret(SECRET, [""])


def test_mask_secret():
    assert mask_secret(None) is None
    assert mask_secret("") == ""
    assert mask_secret(SECRET) == "****LaSw"
    assert mask_secret("12345678") == "****5678"
    assert mask_secret("short") == "****"


@pytest.mark.parametrize("length", range(1, 25))
def test_a_mask_never_shows_a_secret_in_full_or_most_of_it(length):
    secret = "abcdefghijklmnopqrstuvwxyz"[:length]
    masked = mask_secret(secret)
    assert secret not in masked
    assert len(masked.removeprefix("****")) <= length // 2
