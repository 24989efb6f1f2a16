"""SQL access to ``api_tokens``: each function is one or two statements on a connection
the caller owns (so the rotation transaction can run several under one lock)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword.clock import utc
from watchword.tokens.format import TokenKind
from watchword.tokens.model import Owner, TokenRecord
from watchword.tokens.rotation import ROTATED_KINDS, Lifetime
from watchword.tokens.scope import Permission
from watchword.tokens.tables import api_tokens

__all__ = [
    "JanitorCandidate",
    "revoke_owned",
    "delete_tokens",
    "find_janitor_candidates",
    "insert_token",
    "list_tokens",
    "load_by_hash",
    "load_by_id",
    "load_lifetimes",
    "record_from_row",
    "revoke_subtree",
    "revoke_token",
    "parent_usable",
    "set_expiry",
    "successor_of",
    "touch_last_used",
]


@dataclass(frozen=True, slots=True)
class JanitorCandidate:
    id: str
    kind: TokenKind
    expires_at: datetime | None
    revoked_at: datetime | None


def _aware(value: datetime | None) -> datetime | None:
    return utc(value) if value is not None else None


def record_from_row(row: Row[tuple[object, ...]]) -> TokenRecord:
    m = row._mapping
    scopes: str = m["scopes"]
    return TokenRecord(
        id=m["id"],
        kind=TokenKind(m["kind"]),
        name=m["name"],
        owner=Owner(issuer=m["owner_issuer"], subject=m["owner_subject"]),
        organization_id=m["organization_id"],
        scopes=frozenset(scopes.split()) if scopes else frozenset(),
        permission=Permission(m["permission"]),
        display_prefix=m["display_prefix"],
        token_hash=m["token_hash"],
        created_at=utc(m["created_at"]),
        expires_at=_aware(m["expires_at"]),
        last_used_at=_aware(m["last_used_at"]),
        revoked_at=_aware(m["revoked_at"]),
        rotated_from=m["rotated_from"],
        version=m["version"],
        parent_id=m["parent_id"],
    )


async def insert_token(conn: AsyncConnection, record: TokenRecord) -> None:
    await conn.execute(
        insert(api_tokens).values(
            id=record.id,
            kind=record.kind.value,
            name=record.name,
            owner_issuer=record.owner.issuer,
            owner_subject=record.owner.subject,
            organization_id=record.organization_id,
            scopes=" ".join(sorted(record.scopes)),
            permission=record.permission.value,
            display_prefix=record.display_prefix,
            token_hash=record.token_hash,
            created_at=record.created_at,
            expires_at=record.expires_at,
            last_used_at=record.last_used_at,
            revoked_at=record.revoked_at,
            rotated_from=record.rotated_from,
            version=record.version,
            parent_id=record.parent_id,
        )
    )


async def load_by_hash(conn: AsyncConnection, token_hash: str) -> TokenRecord | None:
    row = (
        await conn.execute(select(api_tokens).where(api_tokens.c.token_hash == token_hash))
    ).first()
    return record_from_row(row) if row is not None else None


async def load_by_id(conn: AsyncConnection, token_id: str) -> TokenRecord | None:
    row = (await conn.execute(select(api_tokens).where(api_tokens.c.id == token_id))).first()
    return record_from_row(row) if row is not None else None


async def successor_of(conn: AsyncConnection, token_id: str) -> str | None:
    return (
        await conn.execute(
            select(api_tokens.c.id).where(api_tokens.c.rotated_from == token_id).limit(1)
        )
    ).scalar_one_or_none()


async def list_tokens(
    conn: AsyncConnection,
    *,
    owner: Owner | None,
    after_id: str | None,
    limit: int,
    organization_id: str | None = None,
) -> list[TokenRecord]:
    """Tokens ordered by id (creation order), after ``after_id``."""
    stmt = select(api_tokens).order_by(api_tokens.c.id).limit(limit)
    if organization_id is not None:
        stmt = stmt.where(api_tokens.c.organization_id == organization_id)
    if owner is not None:
        stmt = stmt.where(
            api_tokens.c.owner_issuer == owner.issuer,
            api_tokens.c.owner_subject == owner.subject,
        )
    if after_id is not None:
        stmt = stmt.where(api_tokens.c.id > after_id)
    return [record_from_row(r) for r in (await conn.execute(stmt)).all()]


async def load_lifetimes(
    conn: AsyncConnection, owner: Owner, name: str, kind: TokenKind
) -> list[Lifetime]:
    rows = (
        await conn.execute(
            select(
                api_tokens.c.id,
                api_tokens.c.created_at,
                api_tokens.c.expires_at,
                api_tokens.c.revoked_at,
            ).where(
                api_tokens.c.owner_issuer == owner.issuer,
                api_tokens.c.owner_subject == owner.subject,
                api_tokens.c.name == name,
                api_tokens.c.kind == kind.value,
            )
        )
    ).all()
    return [
        Lifetime(
            id=r.id,
            created_at=utc(r.created_at),
            expires_at=_aware(r.expires_at),
            revoked_at=_aware(r.revoked_at),
        )
        for r in rows
    ]


async def set_expiry(conn: AsyncConnection, token_id: str, expires_at: datetime) -> None:
    await conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id)
        .values(expires_at=expires_at, version=api_tokens.c.version + 1)
    )


async def revoke_token(conn: AsyncConnection, token_id: str, now: datetime) -> bool:
    """Set ``revoked_at`` unless already revoked; ``False`` when nothing changed."""
    result = await conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now, version=api_tokens.c.version + 1)
    )
    return result.rowcount == 1


async def revoke_subtree(conn: AsyncConnection, root_id: str, now: datetime) -> list[TokenRecord]:
    """Revoke ``root_id`` and everything descended from it, level by level: children
    (``parent_id``) and successors (``rotated_from``), recursively; return every token of
    the subtree as stored afterwards, the root first (already revoked ones included, with
    their own ``revoked_at``).

    Each level is revoked *before* the next is looked up. On PostgreSQL that ``UPDATE``
    waits for a concurrent rotation or child creation holding the row, and the next
    ``SELECT`` (a new snapshot under READ COMMITTED) then sees what it inserted; a
    rotation or creation that comes after finds its source revoked (see
    :func:`parent_usable` and the version check of rotation).
    """
    t = api_tokens.c
    out: list[TokenRecord] = []
    seen = {root_id}
    level = [root_id]
    while level:
        await conn.execute(
            update(api_tokens)
            .where(t.id.in_(level), t.revoked_at.is_(None))
            .values(revoked_at=now, version=t.version + 1)
        )
        rows = (await conn.execute(select(api_tokens).where(t.id.in_(level)))).all()
        out.extend(sorted((record_from_row(r) for r in rows), key=lambda r: r.id != root_id))
        found = (
            await conn.execute(
                select(t.id).where(or_(t.parent_id.in_(level), t.rotated_from.in_(level)))
            )
        ).scalars()
        level = sorted(set(found) - seen)
        seen.update(level)
    return out


async def parent_usable(conn: AsyncConnection, parent_id: str, now: datetime) -> bool:
    """Whether ``parent_id`` may still make a child: it exists and is not revoked. The row
    is share-locked (PostgreSQL) until commit, so a concurrent :func:`revoke_subtree`
    either waits for the child and revokes it too, or is seen here."""
    row = (
        await conn.execute(
            select(api_tokens.c.revoked_at)
            .where(api_tokens.c.id == parent_id)
            .with_for_update(read=True)
        )
    ).first()
    return row is not None and (row.revoked_at is None or utc(row.revoked_at) > now)


async def revoke_owned(conn: AsyncConnection, owner: Owner, now: datetime) -> list[TokenRecord]:
    """Revoke every active token of ``owner``; the records as they were (for cache
    invalidation after commit)."""
    rows = (
        await conn.execute(
            select(api_tokens).where(
                api_tokens.c.owner_issuer == owner.issuer,
                api_tokens.c.owner_subject == owner.subject,
                api_tokens.c.revoked_at.is_(None),
            )
        )
    ).all()
    records = [record_from_row(row) for row in rows]
    if records:
        await conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id.in_([r.id for r in records]), api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now, version=api_tokens.c.version + 1)
        )
    return records


async def touch_last_used(
    conn: AsyncConnection, token_id: str, now: datetime, not_since: datetime
) -> None:
    """Write ``last_used_at`` only if it is older than ``not_since`` (a replica that
    races another writes nothing), so the row is written at most once per interval."""
    await conn.execute(
        update(api_tokens)
        .where(
            api_tokens.c.id == token_id,
            or_(api_tokens.c.last_used_at.is_(None), api_tokens.c.last_used_at < not_since),
        )
        .values(last_used_at=now)
    )


async def find_janitor_candidates(
    conn: AsyncConnection, cutoff: datetime, *, limit: int, after_id: str | None = None
) -> list[JanitorCandidate]:
    """Rows that may be due for deletion (the pure rule decides): expired or revoked
    before ``cutoff``, or of a rotated kind without expiry."""
    cols = (api_tokens.c.id, api_tokens.c.kind, api_tokens.c.expires_at, api_tokens.c.revoked_at)
    stmt = (
        select(*cols)
        .where(
            or_(
                api_tokens.c.expires_at < cutoff,
                api_tokens.c.revoked_at < cutoff,
                and_(
                    api_tokens.c.expires_at.is_(None),
                    api_tokens.c.kind.in_([k.value for k in ROTATED_KINDS]),
                ),
            )
        )
        .order_by(api_tokens.c.id)
        .limit(limit)
    )
    if after_id is not None:
        stmt = stmt.where(api_tokens.c.id > after_id)
    return [
        JanitorCandidate(
            id=r.id,
            kind=TokenKind(r.kind),
            expires_at=_aware(r.expires_at),
            revoked_at=_aware(r.revoked_at),
        )
        for r in (await conn.execute(stmt)).all()
    ]


async def delete_tokens(conn: AsyncConnection, ids: Sequence[str]) -> int:
    if not ids:
        return 0
    result = await conn.execute(delete(api_tokens).where(api_tokens.c.id.in_(list(ids))))
    return int(result.rowcount)
