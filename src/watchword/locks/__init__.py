"""Refresh-once locks: at most one holder per key across processes, fenced and prompt.

Public API::

    locks = Locks(MemoryBackend(), metrics=LockMetrics(registry))
    async with locks.hold(key, ttl=timedelta(seconds=15), wait=timedelta(seconds=15)) as lease:
        ...

Backends: :class:`MemoryBackend` (one process), :class:`RedisBackend`,
:class:`PostgresBackend`, :class:`SQLiteBackend`; :func:`open_backend` picks one from a
URL. :func:`refresh_once` is the take-lock / re-read / refresh-if-needed / fenced-write
pattern built on top.
"""

from __future__ import annotations

from watchword.locks.backend import LockBackend, ReleaseSignal
from watchword.locks.errors import LockLost
from watchword.locks.factory import database_or_redis_locks, open_backend
from watchword.locks.front import MAX_KEY_LENGTH, Locks
from watchword.locks.lease import Attempt, Lease, new_holder_id
from watchword.locks.memory import MemoryBackend
from watchword.locks.metrics import AcquireOutcome, LockMetrics
from watchword.locks.postgres import PostgresBackend
from watchword.locks.redis import RedisBackend
from watchword.locks.refresh_once import (
    Refreshable,
    RefreshOutcome,
    RefreshSteps,
    kept_alive,
    refresh_once,
)
from watchword.locks.sqlite import SQLiteBackend

__all__ = [
    "database_or_redis_locks",
    "MAX_KEY_LENGTH",
    "AcquireOutcome",
    "Attempt",
    "Lease",
    "LockBackend",
    "LockLost",
    "LockMetrics",
    "Locks",
    "MemoryBackend",
    "PostgresBackend",
    "RedisBackend",
    "RefreshOutcome",
    "RefreshSteps",
    "Refreshable",
    "ReleaseSignal",
    "SQLiteBackend",
    "new_holder_id",
    "open_backend",
    "kept_alive",
    "refresh_once",
]
