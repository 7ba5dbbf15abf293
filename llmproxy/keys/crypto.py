"""AES-256-GCM for secrets at rest (provider keys).

Stored format: ``v1.<key id>.<base64url(nonce || ciphertext || tag)>``. The key id
is the first 8 hex chars of SHA-256 of the key, so a value sealed under another
ENCRYPTION_KEY is reported as such instead of as tampering. A fresh 96-bit nonce
per value; the row's context (e.g. ``provider:openai``) is bound as associated
data, so a ciphertext copied to another row does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"


class DecryptionError(Exception):
    """A stored secret could not be decrypted (wrong key, tampered or malformed value)."""


class WrongKeyError(DecryptionError):
    """The value was encrypted under another ENCRYPTION_KEY."""


class TamperedError(DecryptionError):
    """The value failed authentication: it was altered or belongs to another row."""


def key_id(key: bytes) -> str:
    """Short fingerprint of an encryption key (not secret: 32 bits of its hash)."""
    return hashlib.sha256(key).hexdigest()[:8]


def encrypt(plaintext: str, *, key: bytes, context: str) -> str:
    """Seal a secret for storage."""
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), context.encode())
    return f"{VERSION}.{key_id(key)}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def decrypt(stored: str, *, key: bytes, context: str) -> str:
    """Open a stored secret; raise DecryptionError rather than ever return garbage."""
    try:
        version, kid, payload = stored.split(".", 2)
    except ValueError:
        raise DecryptionError("stored secret is malformed") from None
    if version != VERSION:
        raise DecryptionError(f"stored secret has unknown format {version!r}")
    if kid != key_id(key):
        raise WrongKeyError("stored secret was encrypted with a different ENCRYPTION_KEY")
    try:
        raw = base64.urlsafe_b64decode(payload.encode())
        return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode()).decode()
    except (InvalidTag, ValueError):
        raise TamperedError("stored secret failed authentication (altered or moved)") from None
