"""Identifier helpers: sortable random ids with a readable prefix."""

from __future__ import annotations

import re
import secrets
import threading
import time

__all__ = ["ID_PATTERN", "is_id", "new_id"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
ID_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,15}_[0-9a-hjkmnp-tv-z]{26}$")


def _b32(number: int, length: int) -> str:
    out = []
    for _ in range(length):
        number, rem = divmod(number, 32)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


_last = [0, 0]  # [millisecond, random part] of the newest id this process made
_lock = threading.Lock()


def new_id(prefix: str) -> str:
    """``<prefix>_<26 chars>``: 48-bit millisecond time then 80 random bits (ULID layout).

    Ids sort by creation time, which keeps B-tree inserts local and cursors stable. Within
    one millisecond a process increments the random part (monotonic ULIDs), so ids made one
    after the other in a process always sort in that order.
    """
    if not re.fullmatch(r"[a-z][a-z0-9]{0,15}", prefix):
        raise ValueError(f"invalid id prefix {prefix!r}")
    stamp = int(time.time() * 1000) & ((1 << 48) - 1)
    with _lock:
        if stamp <= _last[0]:
            stamp, rand = _last[0], (_last[1] + 1) & ((1 << 80) - 1)
        else:
            rand = secrets.randbits(80)
        _last[0], _last[1] = stamp, rand
    return f"{prefix}_{_b32(stamp, 10)}{_b32(rand, 16)}"


def is_id(value: str, prefix: str | None = None) -> bool:
    if not ID_PATTERN.fullmatch(value):
        return False
    return prefix is None or value.startswith(prefix + "_")
