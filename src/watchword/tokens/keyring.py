"""Keys derived from ``WATCHWORD_SECRET_KEY``, one per purpose.

Each purpose has its own HKDF-SHA256 ``info`` label, so a value made for one (a sealed
rotation-cache plaintext, a signed verification-cache entry, the sealed current plaintext
on a rotation anchor row) can never be passed off as another, and changing one purpose's
layout means a new label rather than a shared key.
"""

from __future__ import annotations

from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from watchword.config import MIN_SECRET_KEY_LENGTH
from watchword.errors import ConfigurationError

__all__ = ["MIN_SECRET_KEY_LENGTH", "KeyPurpose", "derive_purpose_key", "usable_secret_key"]


class KeyPurpose(StrEnum):
    """The HKDF ``info`` label of each derived key."""

    ROTATION_CACHE = "watchword/tokens/rotation-cache/v1"
    VERIFY_CACHE = "watchword/tokens/verify-cache/v1"
    ROTATION_ANCHOR = "watchword/tokens/rotation-anchor/v1"
    EDGE_ASSERTION = "watchword/edge/assertion/v1"


def usable_secret_key(secret_key: str | None) -> bool:
    return secret_key is not None and len(secret_key) >= MIN_SECRET_KEY_LENGTH


def derive_purpose_key(secret_key: str | None, purpose: KeyPurpose) -> bytes:
    """A 32-byte key for ``purpose``; :class:`ConfigurationError` naming the setting if it
    is missing or shorter than :data:`MIN_SECRET_KEY_LENGTH`."""
    if secret_key is None or not usable_secret_key(secret_key):
        raise ConfigurationError(
            "WATCHWORD_SECRET_KEY must be set to at least "
            f"{MIN_SECRET_KEY_LENGTH} random characters when WATCHWORD_REDIS_URL is set: "
            "rotated integration tokens are cached in Redis encrypted under it"
        )
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.value.encode())
    return hkdf.derive(secret_key.encode())
