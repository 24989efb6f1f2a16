"""Optimistic concurrency for records: write only if nobody wrote since we read.

Two guards, both a single conditional ``UPDATE`` whose row count tells who won:

- :func:`update_versioned`: ``UPDATE … SET …, version = version + 1
  WHERE <row> AND version = :read_version``; zero rows means the record changed (or
  went away) since it was read, and :class:`~watchword.errors.VersionConflict` is raised
  for the caller to re-read and retry (:func:`retry_on_conflict`).
- :func:`update_fenced`: ``UPDATE … SET …, fence = :fence WHERE <row> AND (fence IS
  NULL OR fence < :fence)``; a writer holding an older lock grant than the last writer is
  refused, so a holder that lost its lease cannot overwrite its successor's work. A row
  never written under a fence (NULL) takes any fence.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import ColumnElement, Table, or_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword.errors import VersionConflict

__all__ = ["retry_on_conflict", "update_fenced", "update_versioned"]

_T = TypeVar("_T")


async def update_versioned(
    conn: AsyncConnection,
    table: Table,
    where: ColumnElement[bool],
    *,
    read_version: int,
    values: Mapping[str, object],
    version_column: str = "version",
) -> int:
    """Apply ``values`` to the row matching ``where`` if its version is still
    ``read_version``; returns the new version, raises :class:`VersionConflict` if not."""
    version = table.c[version_column]
    stmt = (
        update(table)
        .where(where, version == read_version)
        .values({**values, version_column: version + 1})
    )
    result = await conn.execute(stmt)
    if result.rowcount != 1:
        raise VersionConflict(
            f"{table.name}: the record changed since version {read_version} was read"
        )
    return read_version + 1


async def update_fenced(
    conn: AsyncConnection,
    table: Table,
    where: ColumnElement[bool],
    *,
    fence: int,
    values: Mapping[str, object],
    fence_column: str = "fence",
) -> bool:
    """Apply ``values`` and store ``fence`` if ``fence`` is newer than the one stored
    beside the row (or none is); ``False`` (nothing written) when a newer grant already
    wrote."""
    stored = table.c[fence_column]
    # NULL < :fence is NULL, which would refuse every write to a row not yet fenced.
    newer = or_(stored.is_(None), stored < fence)
    stmt = update(table).where(where, newer).values({**values, fence_column: fence})
    result = await conn.execute(stmt)
    return result.rowcount == 1


async def retry_on_conflict(
    operation: Callable[[], Awaitable[_T]],
    *,
    attempts: int = 5,
    backoff: timedelta = timedelta(milliseconds=5),
) -> _T:
    """Run ``operation`` (which must re-read what it updates) until it does not raise
    :class:`VersionConflict`, at most ``attempts`` times, with jittered exponential
    backoff; the last conflict is re-raised."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    base = backoff.total_seconds()
    for attempt in range(attempts):
        try:
            return await operation()
        except VersionConflict:
            if attempt == attempts - 1:
                raise
            # Full jitter: racing retriers spread out instead of colliding again.
            await asyncio.sleep(random.uniform(0, base * 2**attempt))  # noqa: S311
    raise AssertionError("unreachable")  # pragma: no cover
