"""Encryption of webhook secrets at rest.

Secrets are encrypted with Fernet (AES-128-CBC + HMAC-SHA256). ``ULAK_SECRET_KEYS`` lists
keys newest first: the first encrypts, all of them decrypt, so a key can be rotated by
putting the new one in front (``ulak rotate_secrets`` then re-encrypts old rows).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "enc1:"


def _fernet_key(material: str) -> bytes:
    # Any string becomes a valid 32-byte Fernet key; a real Fernet key is used as is.
    try:
        raw = base64.urlsafe_b64decode(material.encode())
        if len(raw) == 32:
            return material.encode()
    except (ValueError, TypeError):
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(material.encode()).digest())


@functools.lru_cache(maxsize=8)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(k)) for k in keys])


def encrypt_secret(plaintext: str, keys: Sequence[str]) -> str:
    return PREFIX + _cipher(tuple(keys)).encrypt(plaintext.encode()).decode()


def decrypt_secret(stored: str, keys: Sequence[str]) -> str:
    """Decrypt a stored secret; a value without the prefix is a legacy plaintext secret."""
    if not stored.startswith(PREFIX):
        return stored
    try:
        return _cipher(tuple(keys)).decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken as error:
        raise ValueError("webhook secret cannot be decrypted with ULAK_SECRET_KEYS") from error


def mask_secret(secret: str | None) -> str | None:
    """``""`` and None stay as they are; anything else shows only its last four characters."""
    if not secret:
        return secret
    return "****" + secret[-4:]
