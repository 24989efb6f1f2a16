"""Session rows: create, read, end, list, and the key-rotation batches.

Every function takes a connection or an engine and does one thing in SQL; the rules (who may
see what, cache invalidation) live in :mod:`watchword.sessions.service`.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watchword.clock import utc
from watchword.sessions.model import SessionRecord
from watchword.sessions.tables import logout_tokens_seen, sessions, signin_flows
from watchword.storage.paging import Page, page_rows

__all__ = [
    "FlowRow",
    "SealedRow",
    "claim_logout_token",
    "count_by_key",
    "count_sealed_under",
    "count_by_state",
    "delete_expired",
    "delete_sessions",
    "insert_flow",
    "insert_session",
    "list_sessions",
    "organization_column",
    "read_session",
    "record_of",
    "shard_of",
    "SLOTS",
    "rows_to_reseal",
    "take_flow",
    "touch_session",
    "update_sealed",
]

_VIEW: list[Any] = [
    *(c for c in sessions.c if c.name not in {"access_token", "refresh_token", "id_token"}),
    sessions.c.refresh_token.is_not(None).label("has_refresh_token"),
]


def _dt(value: object) -> datetime | None:
    return utc(value) if isinstance(value, datetime) else None


SLOTS = 1024
"""Sessions are spread over this many slots (crc32 of the id); a refresher shard is the set of
slots ``slot % shards == k``, so the shard count can change without rewriting rows."""


def shard_of(session_id: str) -> int:
    return zlib.crc32(session_id.encode()) % SLOTS


def in_shards(held: Sequence[int], shards: int, *, dialect: str) -> ColumnElement[bool]:
    """Sessions in the held shards (of ``shards``); nothing to filter when all are held.
    PostgreSQL: ``shard = ANY(:slots)``, the slots as one array parameter (the planner reads
    the column's statistics, and the statement does not grow with the slots: a ``% shards``
    expression had no statistics and turned the due-index walk into a full sort); SQLite:
    ``shard % shards IN (held)``."""
    if len(set(held)) >= shards:
        return true()
    if dialect == "postgresql":
        slots = [slot for slot in range(SLOTS) if slot % shards in set(held)]
        return sessions.c.shard == any_(
            bindparam("held_slots", slots, type_=postgresql.ARRAY(Integer))
        )
    return (sessions.c.shard % shards).in_(sorted(held))


def organization_column(ids: Sequence[str]) -> str:
    """``|o1|o2|``: one LIKE ``%|o1|%`` finds the sessions of an organization."""
    return "|" + "".join(f"{i}|" for i in sorted(set(ids)))


def record_of(m: Mapping[Any, Any]) -> SessionRecord:
    """A session record from a row's mapping (the view columns and ``has_refresh_token``)."""
    return SessionRecord(
        id=m["id"],
        provider=m["provider"],
        issuer=m["issuer"],
        subject=m["subject"],
        upstream_sid=m["upstream_sid"],
        email=m["email"],
        display_name=m["display_name"],
        claims=json.loads(m["claims"]),
        organization_ids=tuple(o for o in m["organization_ids"].split("|") if o),
        key_id=m["key_id"],
        access_expires_at=_dt(m["access_expires_at"]),
        created_at=utc(m["created_at"]),
        last_seen_at=utc(m["last_seen_at"]),
        expires_at=utc(m["expires_at"]),
        refreshed_at=_dt(m["refreshed_at"]),
        version=m["version"],
        secret_hash=m["secret_hash"],
        state=m["state"],
        state_reason=m["state_reason"],
        has_refresh_token=bool(m["has_refresh_token"]),
        refresh_due_at=_dt(m["refresh_due_at"]),
        refresh_attempt_at=_dt(m["refresh_attempt_at"]),
        refresh_failures=m["refresh_failures"],
        retry_after=_dt(m["retry_after"]),
        userinfo_at=_dt(m["userinfo_at"]),
        last_error=m["last_error"],
        last_error_at=_dt(m["last_error_at"]),
    )


async def insert_session(
    conn: AsyncConnection,
    record: SessionRecord,
    *,
    access_token: bytes | None,
    refresh_token: bytes | None,
    id_token: bytes | None,
) -> None:
    await conn.execute(
        insert(sessions).values(
            id=record.id,
            secret_hash=record.secret_hash,
            provider=record.provider,
            issuer=record.issuer,
            subject=record.subject,
            upstream_sid=record.upstream_sid,
            email=record.email,
            display_name=record.display_name,
            claims=json.dumps(dict(record.claims), separators=(",", ":"), sort_keys=True),
            organization_ids=organization_column(record.organization_ids),
            access_token=access_token,
            refresh_token=refresh_token,
            id_token=id_token,
            key_id=record.key_id,
            access_expires_at=record.access_expires_at,
            created_at=record.created_at,
            last_seen_at=record.last_seen_at,
            expires_at=record.expires_at,
            refreshed_at=record.refreshed_at,
            version=record.version,
            shard=shard_of(record.id),
            refresh_due_at=record.refresh_due_at,
            userinfo_at=record.userinfo_at,
        )
    )


async def read_session(conn: AsyncConnection, session_id: str) -> SessionRecord | None:
    row = (await conn.execute(select(*_VIEW).where(sessions.c.id == session_id))).first()
    return None if row is None else record_of(row._mapping)


@dataclass(frozen=True, slots=True)
class SealedRow:
    """A session's sealed token columns (``None`` where the provider gave none)."""

    id: str
    version: int
    key_id: str
    access_token: bytes | None
    refresh_token: bytes | None
    id_token: bytes | None


def _sealed(row: Row[Any] | Any) -> SealedRow:
    m = row._mapping
    return SealedRow(
        m["id"], m["version"], m["key_id"], m["access_token"], m["refresh_token"], m["id_token"]
    )


_SEALED = (
    sessions.c.id,
    sessions.c.version,
    sessions.c.key_id,
    sessions.c.access_token,
    sessions.c.refresh_token,
    sessions.c.id_token,
)


async def delete_sessions(
    conn: AsyncConnection, where: ColumnElement[bool]
) -> list[tuple[SessionRecord, SealedRow]]:
    """Delete the sessions matching ``where``; what they were (for revocation and caches)."""
    rows = (await conn.execute(select(*_VIEW, *_SEALED[3:]).where(where))).all()
    if not rows:
        return []
    ids = [row._mapping["id"] for row in rows]
    await conn.execute(delete(sessions).where(sessions.c.id.in_(ids)))
    return [(record_of(row._mapping), _sealed(row)) for row in rows]


async def touch_session(conn: AsyncConnection, session_id: str, now: datetime) -> bool:
    """Record activity (idle timeout; never moved back); ``False`` when the session is gone."""
    result = await conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id)
        .values(
            last_seen_at=case((sessions.c.last_seen_at < now, now), else_=sessions.c.last_seen_at)
        )
    )
    return result.rowcount == 1


async def list_sessions(
    engine: AsyncEngine,
    *,
    limit: int,
    cursor: str | None,
    where: Sequence[ColumnElement[bool]] = (),
) -> Page[SessionRecord]:
    async with engine.connect() as conn:
        rows, nxt = await page_rows(
            conn, select(*_VIEW), sessions, limit=limit, cursor=cursor, where=where
        )
    return Page(tuple(record_of(r._mapping) for r in rows), nxt)


async def rows_to_reseal(
    conn: AsyncConnection, *, primary_key_id: str, limit: int
) -> list[SealedRow]:
    rows = (
        await conn.execute(
            select(*_SEALED)
            .where(sessions.c.key_id != primary_key_id)
            .order_by(sessions.c.id)
            .limit(limit)
        )
    ).all()
    return [_sealed(row) for row in rows]


async def update_sealed(
    conn: AsyncConnection,
    row: SealedRow,
    *,
    key_id: str,
    access_token: bytes | None,
    refresh_token: bytes | None,
    id_token: bytes | None,
) -> bool:
    """Replace the sealed columns if the row did not change since it was read."""
    result = await conn.execute(
        update(sessions)
        .where(sessions.c.id == row.id, sessions.c.version == row.version)
        .values(
            key_id=key_id,
            access_token=access_token,
            refresh_token=refresh_token,
            id_token=id_token,
            version=sessions.c.version + 1,
        )
    )
    return result.rowcount == 1


async def count_by_key(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(select(sessions.c.key_id, func.count()).group_by(sessions.c.key_id))
    return {str(key_id): int(count) for key_id, count in rows.all()}


async def count_by_state(conn: AsyncConnection) -> dict[str, int]:
    """Sessions in the table by state (one pass over it)."""
    rows = await conn.execute(select(sessions.c.state, func.count()).group_by(sessions.c.state))
    return {str(state): int(count) for state, count in rows.all()}


async def count_sealed_under(conn: AsyncConnection, *, primary_key_id: str) -> int:
    return int(
        (
            await conn.execute(
                select(func.count())
                .select_from(sessions)
                .where(sessions.c.key_id != primary_key_id)
            )
        ).scalar_one()
    )


# --- sign-in flows ---


@dataclass(frozen=True, slots=True)
class FlowRow:
    provider: str
    return_to: str
    expires_at: datetime


async def insert_flow(
    conn: AsyncConnection,
    *,
    state_hash: str,
    binding_hash: str,
    provider: str,
    return_to: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        insert(signin_flows).values(
            state_hash=state_hash,
            binding_hash=binding_hash,
            provider=provider,
            return_to=return_to,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def take_flow(conn: AsyncConnection, *, state_hash: str, binding_hash: str) -> FlowRow | None:
    """The flow of ``state_hash`` started by the browser of ``binding_hash``, deleted in the
    same step: of two callbacks with one state, only one gets it."""
    where = (signin_flows.c.state_hash == state_hash) & (
        signin_flows.c.binding_hash == binding_hash
    )
    row = (await conn.execute(select(signin_flows).where(where))).first()
    if row is None:
        return None
    result = await conn.execute(delete(signin_flows).where(where))
    if result.rowcount != 1:
        return None  # another callback took it between the read and the delete
    m = row._mapping
    return FlowRow(m["provider"], m["return_to"], utc(m["expires_at"]))


async def claim_logout_token(conn: AsyncConnection, *, jti_hash: str, expires_at: datetime) -> bool:
    """Remember a logout token's ``jti``; ``False`` when it was seen before (a replay)."""
    seen = (
        await conn.execute(
            select(logout_tokens_seen.c.jti_hash).where(logout_tokens_seen.c.jti_hash == jti_hash)
        )
    ).first()
    if seen is not None:
        return False
    await conn.execute(insert(logout_tokens_seen).values(jti_hash=jti_hash, expires_at=expires_at))
    return True


async def delete_expired(conn: AsyncConnection, now: datetime) -> dict[str, int]:
    """Delete expired sessions, flows and remembered logout tokens; counts by table."""
    counts = {}
    for table in (sessions, signin_flows, logout_tokens_seen):
        result = await conn.execute(delete(table).where(table.c.expires_at <= now))
        counts[table.name] = result.rowcount
    return counts
