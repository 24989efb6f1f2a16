"""The API-token format: ``ww<kind>_<body><checksum>``, checked offline.

Rules (pure: no I/O, no randomness, no clock)::

    token    = "ww" kind "_" body checksum
    kind     = "p" (personal) | "s" (service account) | "i" (integration)
    body     = 30 base62 characters           (30 * log2(62) = 178.6 bits of entropy)
    checksum = base62(CRC32(body)), 6 chars, zero-padded  (GitHub's 2021 scheme)

A token is 40 characters long. The ``_`` keeps a double-click selecting the whole token;
the prefix lets secret scanners find leaked tokens, and the checksum lets them (and us)
refuse a typo or a truncated token without a database lookup. Secret scanners can use
:data:`SCANNER_REGEX`. The random body itself is drawn by :mod:`watchword.tokens.mint`.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from watchword.errors import TokenMalformed

__all__ = [
    "BASE62",
    "BODY_LENGTH",
    "CHECKSUM_LENGTH",
    "DISPLAY_PREFIX_LENGTH",
    "SCANNER_REGEX",
    "TOKEN_LENGTH",
    "ParsedToken",
    "TokenKind",
    "base62",
    "checksum",
    "compose",
    "display_prefix",
    "looks_like_token",
    "parse",
]

# --- Rules -------------------------------------------------------------------------------

BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BODY_LENGTH: Final = 30
CHECKSUM_LENGTH: Final = 6
PREFIX_LENGTH: Final = 4  # "wwp_"
TOKEN_LENGTH: Final = PREFIX_LENGTH + BODY_LENGTH + CHECKSUM_LENGTH
DISPLAY_PREFIX_LENGTH: Final = 8  # shown in listings: "wwp_AbCd"

SCANNER_REGEX: Final = r"\bww[psi]_[0-9A-Za-z]{36}\b"
_SHAPE = re.compile(r"ww([psi])_([0-9A-Za-z]{30})([0-9A-Za-z]{6})")


class TokenKind(StrEnum):
    """Who the token is for; the value is the letter in the prefix."""

    PERSONAL = "p"
    SERVICE_ACCOUNT = "s"
    INTEGRATION = "i"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def from_label(cls, label: str) -> TokenKind:
        for kind, name in _LABELS.items():
            if name == label:
                return kind
        raise ValueError(f"unknown token kind {label!r}")


_LABELS: Final = {
    TokenKind.PERSONAL: "personal",
    TokenKind.SERVICE_ACCOUNT: "service_account",
    TokenKind.INTEGRATION: "integration",
}


@dataclass(frozen=True, slots=True)
class ParsedToken:
    kind: TokenKind
    body: str


# --- Functions ---------------------------------------------------------------------------


def base62(number: int, width: int) -> str:
    """``number`` in base62, left-padded with ``0`` to ``width`` characters."""
    if number < 0:
        raise ValueError("base62 encodes non-negative numbers")
    digits = []
    rest = number
    while rest:
        rest, rem = divmod(rest, 62)
        digits.append(BASE62[rem])
    encoded = "".join(reversed(digits)) or "0"
    if len(encoded) > width:
        raise ValueError(f"{number} does not fit in {width} base62 digits")
    return encoded.rjust(width, "0")


def checksum(body: str) -> str:
    """The 6-character base62 CRC32 of ``body`` (62**6 > 2**32, so it always fits)."""
    return base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def compose(kind: TokenKind, body: str) -> str:
    """The full token for a random ``body`` of :data:`BODY_LENGTH` base62 characters."""
    if len(body) != BODY_LENGTH or any(c not in BASE62 for c in body):
        raise ValueError(f"a token body is {BODY_LENGTH} base62 characters")
    return f"ww{kind.value}_{body}{checksum(body)}"


def parse(value: str) -> ParsedToken:
    """Check shape and checksum; :class:`TokenMalformed` when either is wrong.

    The detail is the same for every failure, so it says nothing about which part failed.
    """
    match = _SHAPE.fullmatch(value)
    if match is None or checksum(match[2]) != match[3]:
        raise TokenMalformed("the credential is not a well-formed watchword token")
    return ParsedToken(kind=TokenKind(match[1]), body=match[2])


def looks_like_token(value: str) -> bool:
    try:
        parse(value)
    except TokenMalformed:
        return False
    return True


def display_prefix(token: str) -> str:
    """The first characters of a token, safe to show in listings (26 bits of the body)."""
    return token[:DISPLAY_PREFIX_LENGTH]
