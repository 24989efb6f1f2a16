"""One repository for the named records an organization owns (projects, service accounts).

- A record belongs to the organization it was created in (``unknown_organization`` if that
  does not exist); its name is unique within that organization (``already_exists``,
  pointer ``/name``).
- Read through another organization's path, a record does not exist (``not_found``), so
  one organization cannot learn another's identifiers.
- Lists filter on organization and exact name, keyset-paginated as in :mod:`.record`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from sqlalchemy import ColumnElement, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword.errors import NotFound
from watchword.ids import new_id
from watchword.rbac.errors import UnknownOrganization
from watchword.rbac.store.context import StoreContext
from watchword.rbac.store.record import (
    Page,
    RowOf,
    fetch_row,
    given,
    insert_row,
    list_records,
    read_record,
    require_name_free,
    update_row,
    writing,
)
from watchword.rbac.tables import organizations

__all__ = [
    "OrgScoped",
    "ScopedRecords",
    "create_scoped",
    "get_scoped",
    "list_scoped",
    "require_name_free_in",
    "require_organization",
    "require_same_organization",
    "scoped_filters",
    "update_scoped",
]


class OrgScoped(Protocol):
    @property
    def organization_id(self) -> str: ...


R = TypeVar("R", bound=OrgScoped)


@dataclass(frozen=True, slots=True)
class ScopedRecords(Generic[R]):
    """Where one kind of organization-scoped record lives and how a row becomes a value."""

    table: Table
    what: str  # "project": for messages
    id_prefix: str  # "prj": for new identifiers
    of: Callable[[RowOf], R]


async def require_organization(
    conn: AsyncConnection, organization_id: str, *, pointer: str = "/organization_id"
) -> None:
    found = (
        await conn.execute(select(organizations.c.id).where(organizations.c.id == organization_id))
    ).first()
    if found is None:
        raise UnknownOrganization(
            f"organization {organization_id!r} does not exist", pointer=pointer
        )


async def require_name_free_in(
    conn: AsyncConnection,
    table: Table,
    name: str,
    organization_id: str,
    *,
    what: str,
    except_key: str | None = None,
) -> None:
    """Names are unique within an organization (``already_exists``, pointer ``/name``)."""
    scope = table.c.organization_id == organization_id
    what = f"{what} in this organization"
    await require_name_free(conn, table, name, scope=scope, except_key=except_key, what=what)


def require_same_organization(
    found_in: str, organization_id: str | None, *, what: str, key: str
) -> None:
    """A record asked for through another organization is ``not_found`` there."""
    if organization_id is not None and found_in != organization_id:
        raise NotFound(f"{what} {key!r} does not exist")


async def create_scoped(
    ctx: StoreContext,
    records: ScopedRecords[R],
    *,
    organization_id: str,
    name: str,
    description: str,
) -> R:
    now = ctx.clock.now()
    key = new_id(records.id_prefix)
    table = records.table
    async with writing(ctx.engine) as conn:
        await require_organization(conn, organization_id)
        await require_name_free_in(conn, table, name, organization_id, what=records.what)
        values = {"organization_id": organization_id, "name": name, "description": description}
        await insert_row(conn, table, now, id=key, **values)
        return records.of(await fetch_row(conn, table, key, what=records.what))


async def get_scoped(
    ctx: StoreContext, records: ScopedRecords[R], key: str, *, organization_id: str | None
) -> R:
    record = await read_record(ctx.engine, records.table, key, records.of, what=records.what)
    require_same_organization(record.organization_id, organization_id, what=records.what, key=key)
    return record


def scoped_filters(
    table: Table, *, organization_id: str | None, name: str | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if organization_id is not None:
        where.append(table.c.organization_id == organization_id)
    if name is not None:
        where.append(table.c.name == name)
    return where


async def list_scoped(
    ctx: StoreContext,
    records: ScopedRecords[R],
    *,
    organization_id: str | None,
    name: str | None,
    limit: int,
    cursor: str | None,
    extra: Sequence[ColumnElement[bool]],
) -> Page[R]:
    where = scoped_filters(records.table, organization_id=organization_id, name=name)
    return await list_records(
        ctx.engine, records.table, records.of, limit=limit, cursor=cursor, where=[*where, *extra]
    )


async def update_scoped(
    ctx: StoreContext,
    records: ScopedRecords[R],
    key: str,
    *,
    if_match: int | None,
    name: str | None,
    description: str | None,
    check: Callable[[R], None] = lambda _: None,
) -> R:
    """Rename or redescribe a record at version ``if_match``.

    ``check`` sees the current record first (a refusal there wins over everything else);
    a name taken in the organization is ``already_exists`` pointing at ``/name``.
    """
    table = records.table
    async with writing(ctx.engine) as conn:
        current = records.of(await fetch_row(conn, table, key, what=records.what))
        check(current)
        if name is not None:
            await require_name_free_in(
                conn, table, name, current.organization_id, what=records.what, except_key=key
            )
        await update_row(
            conn,
            table,
            key,
            if_match=if_match,
            values=given(name=name, description=description),
            now=ctx.clock.now(),
            what=records.what,
        )
        return records.of(await fetch_row(conn, table, key, what=records.what))
