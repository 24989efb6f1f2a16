"""Organizations and projects."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Row, func, select

from watchword.ids import new_id
from watchword.rbac.errors import InUse
from watchword.rbac.model import Organization, Project
from watchword.rbac.store.context import StoreContext
from watchword.rbac.store.record import (
    Page,
    delete_row,
    fetch_row,
    given,
    insert_row,
    list_records,
    read_record,
    require_name_free,
    stamp_of,
    update_row,
    writing,
)
from watchword.rbac.store.scoped import (
    ScopedRecords,
    create_scoped,
    get_scoped,
    list_scoped,
    require_organization,
    scoped_filters,
    update_scoped,
)
from watchword.rbac.tables import groups, organizations, projects, roles, service_accounts

__all__ = [
    "create_organization",
    "create_project",
    "delete_organization",
    "delete_project",
    "get_organization",
    "get_project",
    "list_organizations",
    "list_projects",
    "require_organization",
    "update_organization",
    "update_project",
]


def _org(row: Row[tuple[object, ...]]) -> Organization:
    m = row._mapping
    return Organization(m["id"], m["name"], m["description"], stamp_of(row))


def _project(row: Row[tuple[object, ...]]) -> Project:
    m = row._mapping
    return Project(m["id"], m["organization_id"], m["name"], m["description"], stamp_of(row))


async def create_organization(
    ctx: StoreContext, *, name: str, description: str = ""
) -> Organization:
    now = ctx.clock.now()
    oid = new_id("org")
    async with writing(ctx.engine) as conn:
        await require_name_free(conn, organizations, name, what="organization")
        await insert_row(conn, organizations, now, id=oid, name=name, description=description)
        return _org(await fetch_row(conn, organizations, oid, what="organization"))


async def get_organization(ctx: StoreContext, organization_id: str) -> Organization:
    return await read_record(ctx.engine, organizations, organization_id, _org, what="organization")


async def list_organizations(
    ctx: StoreContext,
    *,
    limit: int = 50,
    cursor: str | None = None,
    extra: Sequence[ColumnElement[bool]] = (),
    name: str | None = None,
) -> Page[Organization]:
    where = scoped_filters(organizations, organization_id=None, name=name)
    return await list_records(
        ctx.engine, organizations, _org, limit=limit, cursor=cursor, where=[*where, *extra]
    )


async def update_organization(
    ctx: StoreContext,
    organization_id: str,
    *,
    if_match: int | None,
    name: str | None = None,
    description: str | None = None,
) -> Organization:
    async with writing(ctx.engine) as conn:
        if name is not None:
            await require_name_free(
                conn, organizations, name, except_key=organization_id, what="organization"
            )
        await update_row(
            conn,
            organizations,
            organization_id,
            if_match=if_match,
            values=given(name=name, description=description),
            now=ctx.clock.now(),
            what="organization",
        )
        return _org(await fetch_row(conn, organizations, organization_id, what="organization"))


async def delete_organization(
    ctx: StoreContext, organization_id: str, *, if_match: int | None
) -> None:
    async with writing(ctx.engine) as conn:
        await fetch_row(conn, organizations, organization_id, what="organization")
        for table, what in (
            (projects, "projects"),
            (groups, "groups"),
            (service_accounts, "service accounts"),
            (roles, "roles"),
        ):
            count = (
                await conn.execute(
                    select(func.count())
                    .select_from(table)
                    .where(table.c.organization_id == organization_id)
                )
            ).scalar_one()
            if count:
                raise InUse(f"organization {organization_id!r} still has {count} {what}")
        await delete_row(
            conn, organizations, organization_id, if_match=if_match, what="organization"
        )


PROJECTS = ScopedRecords(projects, "project", "prj", _project)


async def create_project(
    ctx: StoreContext, *, organization_id: str, name: str, description: str = ""
) -> Project:
    return await create_scoped(
        ctx, PROJECTS, organization_id=organization_id, name=name, description=description
    )


async def get_project(
    ctx: StoreContext, project_id: str, *, organization_id: str | None = None
) -> Project:
    return await get_scoped(ctx, PROJECTS, project_id, organization_id=organization_id)


async def list_projects(
    ctx: StoreContext,
    *,
    organization_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    extra: Sequence[ColumnElement[bool]] = (),
    name: str | None = None,
) -> Page[Project]:
    return await list_scoped(
        ctx,
        PROJECTS,
        organization_id=organization_id,
        name=name,
        limit=limit,
        cursor=cursor,
        extra=extra,
    )


async def update_project(
    ctx: StoreContext,
    project_id: str,
    *,
    if_match: int | None,
    name: str | None = None,
    description: str | None = None,
) -> Project:
    return await update_scoped(
        ctx, PROJECTS, project_id, if_match=if_match, name=name, description=description
    )


async def delete_project(ctx: StoreContext, project_id: str, *, if_match: int | None) -> None:
    async with writing(ctx.engine) as conn:
        await delete_row(conn, projects, project_id, if_match=if_match, what="project")
