"""Organizations and projects."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Row, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword.errors import NotFound
from watchword.ids import new_id
from watchword.rbac.errors import InUse, UnknownOrganization
from watchword.rbac.model import Organization, Project
from watchword.rbac.store.context import StoreContext
from watchword.rbac.store.record import (
    Page,
    delete_row,
    fetch_row,
    page_rows,
    require_name_free,
    stamp_of,
    update_row,
    writing,
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


async def create_organization(
    ctx: StoreContext, *, name: str, description: str = ""
) -> Organization:
    now = ctx.clock.now()
    oid = new_id("org")
    async with writing(ctx.engine) as conn:
        await require_name_free(conn, organizations, name, what="organization")
        await conn.execute(
            insert(organizations).values(
                id=oid,
                name=name,
                description=description,
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
        return _org(await fetch_row(conn, organizations, oid, what="organization"))


async def get_organization(ctx: StoreContext, organization_id: str) -> Organization:
    async with ctx.engine.connect() as conn:
        return _org(await fetch_row(conn, organizations, organization_id, what="organization"))


async def list_organizations(
    ctx: StoreContext,
    *,
    limit: int = 50,
    cursor: str | None = None,
    extra: Sequence[ColumnElement[bool]] = (),
    name: str | None = None,
) -> Page[Organization]:
    where = [] if name is None else [organizations.c.name == name]
    async with ctx.engine.connect() as conn:
        rows, nxt = await page_rows(
            conn,
            select(organizations),
            organizations,
            limit=limit,
            cursor=cursor,
            where=[*where, *extra],
        )
    return Page(tuple(_org(r) for r in rows), nxt)


async def update_organization(
    ctx: StoreContext,
    organization_id: str,
    *,
    if_match: int,
    name: str | None = None,
    description: str | None = None,
) -> Organization:
    values = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
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
            values=values,
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


async def create_project(
    ctx: StoreContext, *, organization_id: str, name: str, description: str = ""
) -> Project:
    now = ctx.clock.now()
    pid = new_id("prj")
    async with writing(ctx.engine) as conn:
        await require_organization(conn, organization_id)
        await require_name_free(
            conn,
            projects,
            name,
            scope=projects.c.organization_id == organization_id,
            what="project in this organization",
        )
        await conn.execute(
            insert(projects).values(
                id=pid,
                organization_id=organization_id,
                name=name,
                description=description,
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
        return _project(await fetch_row(conn, projects, pid, what="project"))


async def get_project(
    ctx: StoreContext, project_id: str, *, organization_id: str | None = None
) -> Project:
    async with ctx.engine.connect() as conn:
        project = _project(await fetch_row(conn, projects, project_id, what="project"))
    if organization_id is not None and project.organization_id != organization_id:
        raise NotFound(f"project {project_id!r} does not exist")
    return project


async def list_projects(
    ctx: StoreContext,
    *,
    organization_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    extra: Sequence[ColumnElement[bool]] = (),
    name: str | None = None,
) -> Page[Project]:
    where = []
    if organization_id is not None:
        where.append(projects.c.organization_id == organization_id)
    if name is not None:
        where.append(projects.c.name == name)
    async with ctx.engine.connect() as conn:
        rows, nxt = await page_rows(
            conn, select(projects), projects, limit=limit, cursor=cursor, where=[*where, *extra]
        )
    return Page(tuple(_project(r) for r in rows), nxt)


async def update_project(
    ctx: StoreContext,
    project_id: str,
    *,
    if_match: int,
    name: str | None = None,
    description: str | None = None,
) -> Project:
    values = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
    async with writing(ctx.engine) as conn:
        if name is not None:
            current = _project(await fetch_row(conn, projects, project_id, what="project"))
            await require_name_free(
                conn,
                projects,
                name,
                scope=projects.c.organization_id == current.organization_id,
                except_key=project_id,
                what="project in this organization",
            )
        await update_row(
            conn,
            projects,
            project_id,
            if_match=if_match,
            values=values,
            now=ctx.clock.now(),
            what="project",
        )
        return _project(await fetch_row(conn, projects, project_id, what="project"))


async def delete_project(ctx: StoreContext, project_id: str, *, if_match: int | None) -> None:
    async with writing(ctx.engine) as conn:
        await delete_row(conn, projects, project_id, if_match=if_match, what="project")
