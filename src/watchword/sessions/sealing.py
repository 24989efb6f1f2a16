"""Upstream tokens encrypted at rest: AES-256-GCM under a named key, several keys accepted.

A sealed value is ``0x01 | len(kid) | kid | nonce (12) | ciphertext+tag``. The key id travels
with the ciphertext, so a row sealed under an older key still opens after a new key became
the first (the one that seals); ``watchword keys rotate`` re-seals every row under the first
key, after which the old key can be removed. The associated data names the session and the
column (``watchword/session/<id>/<column>``): a ciphertext copied to another row or column
does not open.

Each configured key (at least 32 random characters) goes through HKDF-SHA256 with its own
label, so the stored key is never the raw setting; without ``sessions.keys`` the one key is
derived from ``secret_key`` under the id ``secret_key``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from watchword.errors import ConfigurationError
from watchword.secret import Secret

__all__ = [
    "NO_SEALING_KEY",
    "SECRET_KEY_ID",
    "SealedColumn",
    "Sealer",
    "UnsealError",
    "derive_key",
    "key_id_of",
]

SECRET_KEY_ID = "secret_key"  # noqa: S105 - the id of the key derived from secret_key
NO_SEALING_KEY = (
    "sign-in sessions need a key to encrypt upstream tokens at rest: set WATCHWORD_SECRET_KEY "
    "(at least 32 random characters) or sessions.keys"
)
_VERSION = 1
_NONCE = 12
_LABEL = b"watchword/sessions/seal/v1"


class UnsealError(Exception):
    """A sealed value that does not open: unknown key id, tampered, or another row's."""


class SealedColumn:
    ACCESS_TOKEN = "access_token"  # noqa: S105 - column names
    REFRESH_TOKEN = "refresh_token"  # noqa: S105
    ID_TOKEN = "id_token"  # noqa: S105


def derive_key(material: str) -> bytes:
    """The AES-256 key of a configured key string (HKDF-SHA256, watchword's own label)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(
        material.encode()
    )


@dataclass(frozen=True, slots=True)
class _Key:
    id: str
    aead: AESGCM

    def __repr__(self) -> str:
        return f"_Key(id={self.id!r})"


class Sealer:
    """Seals with the first key; opens with any key it holds."""

    __slots__ = ("_keys", "_primary")

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigurationError(NO_SEALING_KEY)
        self._keys = {kid: _Key(kid, AESGCM(material)) for kid, material in keys}
        self._primary = self._keys[keys[0][0]]

    @classmethod
    def from_settings(cls, keys: Sequence[tuple[str, Secret]], secret_key: str | None) -> Sealer:
        """From ``sessions.keys`` (id, key) pairs, or the key derived from ``secret_key``."""
        if keys:
            return cls([(kid, derive_key(value.reveal())) for kid, value in keys])
        if secret_key:
            return cls([(SECRET_KEY_ID, derive_key(secret_key))])
        return cls([])

    @property
    def primary_id(self) -> str:
        return self._primary.id

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def seal(self, plaintext: str, *, session_id: str, column: str) -> bytes:
        kid = self._primary.id.encode()
        nonce = os.urandom(_NONCE)
        body = self._primary.aead.encrypt(nonce, plaintext.encode(), _aad(session_id, column))
        return bytes((_VERSION, len(kid))) + kid + nonce + body

    def open(self, sealed: bytes, *, session_id: str, column: str) -> Secret:
        kid, nonce, body = _split(sealed)
        key = self._keys.get(kid)
        if key is None:
            raise UnsealError(f"sealed under key {kid!r}, which is not configured")
        try:
            plain = key.aead.decrypt(nonce, body, _aad(session_id, column))
        except InvalidTag:
            raise UnsealError("the sealed value does not open (tampered or moved)") from None
        return Secret(plain.decode())

    def reseal(self, sealed: bytes, *, session_id: str, column: str) -> bytes:
        """``sealed`` under the first key (unchanged when it already is)."""
        if key_id_of(sealed) == self._primary.id:
            return sealed
        plain = self.open(sealed, session_id=session_id, column=column)
        return self.seal(plain.reveal(), session_id=session_id, column=column)

    def __repr__(self) -> str:
        return f"Sealer(primary={self._primary.id!r}, keys={list(self._keys)!r})"


def key_id_of(sealed: bytes) -> str:
    return _split(sealed)[0]


def _aad(session_id: str, column: str) -> bytes:
    return f"watchword/session/{session_id}/{column}".encode()


def _split(sealed: bytes) -> tuple[str, bytes, bytes]:
    if len(sealed) < 2 or sealed[0] != _VERSION:
        raise UnsealError("not a sealed value of this version")
    size = sealed[1]
    kid = sealed[2 : 2 + size]
    nonce = sealed[2 + size : 2 + size + _NONCE]
    body = sealed[2 + size + _NONCE :]
    if len(kid) != size or len(nonce) != _NONCE or len(body) < 16:
        raise UnsealError("truncated sealed value")
    try:
        return kid.decode(), nonce, body
    except UnicodeDecodeError:
        raise UnsealError("not a sealed value of this version") from None
