"""Encryption of webhook secrets at rest.

Secrets are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, a fresh IV each time).
``ULAK_SECRET_KEYS`` lists keys newest first: the first encrypts, all of them decrypt, so a
key is rotated by putting the new one in front (``ulak rotate_secrets`` then re-encrypts the
stored secrets with it, after which the old key can be dropped).

A key is either a Fernet key (44 characters of URL-safe base64, as
``Fernet.generate_key()`` makes) or any other string (a passphrase, Django's SECRET_KEY),
from which a Fernet key is derived with SHA-256 under a label of its own, so the derived key
is never the hash of the SECRET_KEY that something else might also use.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "enc1:"
# Only this many trailing characters are shown by ``mask_secret``, and only of a secret at
# least ``MASK_MIN_LENGTH`` long: a short secret would otherwise be shown nearly in full.
MASK_VISIBLE_CHARACTERS = 4
MASK_MIN_LENGTH = 8
MASK = "****"

_FERNET_KEY = re.compile(r"[A-Za-z0-9_-]{43}=")
_DERIVATION_LABEL = b"ulak webhook secret encryption key v1\x00"


def derive_fernet_key(material: str) -> bytes:
    """``material`` as a Fernet key: a real Fernet key is used as is, anything else derived."""
    if _FERNET_KEY.fullmatch(material):
        try:
            if len(base64.urlsafe_b64decode(material)) == 32:
                return material.encode("ascii")
        except (binascii.Error, ValueError):
            pass
    if not material:
        raise ValueError("an empty string is not a usable secret key")
    digest = hashlib.sha256(_DERIVATION_LABEL + material.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest)


@functools.lru_cache(maxsize=8)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ValueError("no key to encrypt webhook secrets with (ULAK_SECRET_KEYS is empty)")
    return MultiFernet([Fernet(derive_fernet_key(key)) for key in keys])


def is_encrypted(stored: str | None) -> bool:
    return bool(stored) and stored.startswith(PREFIX)


def encrypt_secret(plaintext: str, keys: Sequence[str]) -> str:
    """Encrypt with the first (newest) key; the result starts with ``PREFIX``."""
    return PREFIX + _cipher(tuple(keys)).encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt_secret(stored: str, keys: Sequence[str]) -> str:
    """Decrypt a stored secret with any of ``keys``; a value without the prefix is a legacy
    plaintext secret (imported from an older store) and comes back as it is."""
    if not is_encrypted(stored):
        return stored
    try:
        return _cipher(tuple(keys)).decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError) as error:
        raise ValueError("webhook secret cannot be decrypted with ULAK_SECRET_KEYS") from error


def reencrypt_secret(stored: str, keys: Sequence[str]) -> str:
    """``stored`` (encrypted with any of ``keys``, or legacy plaintext) under the newest key."""
    return encrypt_secret(decrypt_secret(stored, keys), keys)


def is_encrypted_with_newest(stored: str, keys: Sequence[str]) -> bool:
    """True when the newest key alone decrypts ``stored``."""
    if not is_encrypted(stored) or not keys:
        return False
    try:
        Fernet(derive_fernet_key(keys[0])).decrypt(stored[len(PREFIX) :].encode("ascii"))
    except (InvalidToken, UnicodeError):
        return False
    return True


def mask_secret(secret: str | None) -> str | None:
    """``""`` and None stay as they are; a secret shows at most its last four characters.

    ``"****ab12"`` for a secret of 8 characters or more, just ``"****"`` for a shorter one.
    """
    if not secret:
        return secret
    if len(secret) < MASK_MIN_LENGTH:
        return MASK
    return MASK + secret[-MASK_VISIBLE_CHARACTERS:]
