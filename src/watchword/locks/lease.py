"""Values every lock backend speaks: the lease, one attempt's outcome, holder ids.

Invariants a backend must keep for each key:

- at most one live lease (``expires_at`` in the future, by the backend's clock);
- ``fence`` grows with every grant and is never handed out twice, also after the
  backend restarts when it persists its state;
- only the lease's own ``(holder, fence)`` can renew or release it, and only while it
  is live; anybody else's attempt changes nothing and is answered ``False``/``None``.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Attempt", "Lease", "new_holder_id"]


@dataclass(frozen=True, slots=True)
class Lease:
    """One grant of ``key`` to ``holder``; ``fence`` is unique and increasing per key."""

    key: str
    holder: str
    fence: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    """The answer to one compare-and-swap attempt.

    ``lease`` is the grant when it succeeded; ``broken`` says it took over a lease that
    had expired without being released. When it failed, ``retry_after`` is how long the
    current lease still runs (when the backend knows), so a waiter wakes at its expiry
    even if no release is ever announced.
    """

    lease: Lease | None
    broken: bool = False
    retry_after: timedelta | None = None


_HOST = socket.gethostname()


def new_holder_id() -> str:
    """``host:pid:random``: unique per process and per acquisition (so per task too)."""
    return f"{_HOST}:{os.getpid()}:{secrets.token_hex(8)}"
