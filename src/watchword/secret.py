"""A wrapper that keeps secrets out of reprs, logs, tracebacks and JSON dumps."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = ["REDACTED", "Secret", "constant_time_equal", "sha256_hex"]

REDACTED: Final = "**********"


class Secret:
    """Holds a secret string; only :meth:`reveal` gives it back.

    ``str()``, ``repr()`` and f-strings show ``**********``; two secrets compare in
    constant time.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return constant_time_equal(self._value, other._value)

    def __hash__(self) -> int:
        return hash(sha256_hex(self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values are not picklable")


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
