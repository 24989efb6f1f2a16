"""Groups: members (subjects unique on (issuer, id)), mapped IdP groups, roles, projects.

Invariants enforced at write time (refused with a pointer and a code):

- the organization exists (``unknown_organization``);
- a member appears once per (issuer, id) (``duplicate_member``);
- a member that is one of watchword's service accounts belongs to the group's organization
  (``service_account_foreign_organization``): a service account is in exactly one;
- roles are catalogue roles or roles of the group's organization (``unknown_role``);
- linked projects are projects of the group's organization (``unknown_project``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement, Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword.errors import NotFound, UnknownRole, VersionConflict
from watchword.ids import new_id
from watchword.rbac.claims import SERVICE_ACCOUNT_PREFIX
from watchword.rbac.errors import (
    DuplicateMember,
    ServiceAccountForeignOrg,
    UnknownProject,
)
from watchword.rbac.model import Group, GroupMember, IdpGroup
from watchword.rbac.store.context import StoreContext
from watchword.rbac.store.record import (
    Page,
    delete_row,
    fetch_row,
    given,
    insert_row,
    page_rows,
    stamp_of,
    writing,
)
from watchword.rbac.store.scoped import (
    require_name_free_in,
    require_organization,
    require_same_organization,
    scoped_filters,
)
from watchword.rbac.tables import (
    group_idp_groups,
    group_members,
    group_projects,
    group_roles,
    groups,
    projects,
    roles,
    service_accounts,
)

__all__ = [
    "add_member",
    "create_group",
    "delete_group",
    "get_group",
    "list_groups",
    "load_group",
    "remove_member",
    "update_group",
]


async def load_group(conn: AsyncConnection, group_id: str) -> Group:
    row = await fetch_row(conn, groups, group_id, what="group")
    return (await _hydrate(conn, [row]))[0]


async def _hydrate(conn: AsyncConnection, rows: Sequence[Row[tuple[object, ...]]]) -> list[Group]:
    ids = [r._mapping["id"] for r in rows]
    members: dict[str, list[GroupMember]] = {i: [] for i in ids}
    idps: dict[str, list[IdpGroup]] = {i: [] for i in ids}
    role_ids: dict[str, list[str]] = {i: [] for i in ids}
    project_ids: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        for m in await conn.execute(select(group_members).where(group_members.c.group_id.in_(ids))):
            members[m.group_id].append(GroupMember(m.issuer, m.subject_id, m.email))
        for g in await conn.execute(
            select(group_idp_groups).where(group_idp_groups.c.group_id.in_(ids))
        ):
            idps[g.group_id].append(IdpGroup(g.issuer, g.name))
        for r in await conn.execute(select(group_roles).where(group_roles.c.group_id.in_(ids))):
            role_ids[r.group_id].append(r.role_id)
        for p in await conn.execute(
            select(group_projects).where(group_projects.c.group_id.in_(ids))
        ):
            project_ids[p.group_id].append(p.project_id)
    out = []
    for row in rows:
        gm = row._mapping
        gid = gm["id"]
        legacy = gm["legacy_user_ids"]
        out.append(
            Group(
                id=gid,
                organization_id=gm["organization_id"],
                name=gm["name"],
                description=gm["description"],
                members=tuple(sorted(members[gid])),
                idp_groups=tuple(sorted(idps[gid])),
                role_ids=tuple(sorted(role_ids[gid])),
                project_ids=tuple(sorted(project_ids[gid])),
                legacy_user_ids=None if legacy is None else tuple(legacy),
                stamp=stamp_of(row),
            )
        )
    return out


async def _check_members(
    conn: AsyncConnection,
    ctx: StoreContext,
    organization_id: str,
    members: Sequence[GroupMember],
    *,
    existing: Iterable[tuple[str, str]] = (),
    pointer: str | None = "/members",
) -> None:
    seen = set(existing)
    for i, member in enumerate(members):
        if member.pair in seen:
            raise DuplicateMember(
                f"subject {member.id!r} of {member.issuer!r} is already a member",
                pointer="/id" if pointer is None else f"{pointer}/{i}",
            )
        seen.add(member.pair)
        if member.issuer == ctx.issuer_url and member.id.startswith(SERVICE_ACCOUNT_PREFIX):
            sa_id = member.id.removeprefix(SERVICE_ACCOUNT_PREFIX)
            home = (
                await conn.execute(
                    select(service_accounts.c.organization_id).where(service_accounts.c.id == sa_id)
                )
            ).scalar_one_or_none()
            if home != organization_id:
                raise ServiceAccountForeignOrg(
                    f"service account {sa_id!r} "
                    + ("does not exist" if home is None else "belongs to another organization"),
                    pointer="/id" if pointer is None else f"{pointer}/{i}",
                )


async def _check_roles(
    conn: AsyncConnection, organization_id: str, role_ids: Sequence[str]
) -> None:
    if not role_ids:
        return
    found = {
        r.id: r.organization_id
        for r in await conn.execute(
            select(roles.c.id, roles.c.organization_id).where(roles.c.id.in_(list(role_ids)))
        )
    }
    for i, role_id in enumerate(role_ids):
        if role_id not in found or found[role_id] not in (None, organization_id):
            raise UnknownRole(
                f"role {role_id!r} is neither a catalogue role nor one of this organization",
                pointer=f"/role_ids/{i}",
            )


async def _check_projects(
    conn: AsyncConnection, organization_id: str, project_ids: Sequence[str]
) -> None:
    if not project_ids:
        return
    found = {
        p.id: p.organization_id
        for p in await conn.execute(
            select(projects.c.id, projects.c.organization_id).where(
                projects.c.id.in_(list(project_ids))
            )
        )
    }
    for i, project_id in enumerate(project_ids):
        if found.get(project_id) != organization_id:
            raise UnknownProject(
                f"project {project_id!r} is not a project of organization {organization_id!r}",
                pointer=f"/project_ids/{i}",
            )


async def _insert_members(
    conn: AsyncConnection, group_id: str, members: Sequence[GroupMember]
) -> None:
    for m in members:
        await conn.execute(
            insert(group_members).values(
                group_id=group_id, issuer=m.issuer, subject_id=m.id, email=m.email
            )
        )


async def _replace_children(
    conn: AsyncConnection,
    group_id: str,
    *,
    idp_groups: Sequence[IdpGroup] | None = None,
    role_ids: Sequence[str] | None = None,
    project_ids: Sequence[str] | None = None,
) -> None:
    if idp_groups is not None:
        await conn.execute(delete(group_idp_groups).where(group_idp_groups.c.group_id == group_id))
        for g in sorted(set(idp_groups)):
            await conn.execute(
                insert(group_idp_groups).values(group_id=group_id, issuer=g.issuer, name=g.name)
            )
    if role_ids is not None:
        await conn.execute(delete(group_roles).where(group_roles.c.group_id == group_id))
        for r in sorted(set(role_ids)):
            await conn.execute(insert(group_roles).values(group_id=group_id, role_id=r))
    if project_ids is not None:
        await conn.execute(delete(group_projects).where(group_projects.c.group_id == group_id))
        for p in sorted(set(project_ids)):
            await conn.execute(insert(group_projects).values(group_id=group_id, project_id=p))


async def create_group(
    ctx: StoreContext,
    *,
    organization_id: str,
    name: str,
    description: str = "",
    members: Sequence[GroupMember] = (),
    idp_groups: Sequence[IdpGroup] = (),
    role_ids: Sequence[str] = (),
    project_ids: Sequence[str] = (),
    legacy_user_ids: Sequence[str] | None = None,
    group_id: str | None = None,
) -> Group:
    now = ctx.clock.now()
    gid = group_id or new_id("grp")
    async with writing(ctx.engine) as conn:
        await require_organization(conn, organization_id)
        await require_name_free_in(conn, groups, name, organization_id, what="group")
        await _check_members(conn, ctx, organization_id, members)
        await _check_roles(conn, organization_id, role_ids)
        await _check_projects(conn, organization_id, project_ids)
        await insert_row(
            conn,
            groups,
            now,
            id=gid,
            organization_id=organization_id,
            name=name,
            description=description,
            legacy_user_ids=None if legacy_user_ids is None else list(legacy_user_ids),
        )
        await _insert_members(conn, gid, members)
        await _replace_children(
            conn, gid, idp_groups=idp_groups, role_ids=role_ids, project_ids=project_ids
        )
        return await load_group(conn, gid)


async def get_group(
    ctx: StoreContext, group_id: str, *, organization_id: str | None = None
) -> Group:
    async with ctx.engine.connect() as conn:
        group = await load_group(conn, group_id)
    require_same_organization(group.organization_id, organization_id, what="group", key=group_id)
    return group


async def list_groups(
    ctx: StoreContext,
    *,
    organization_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    extra: Sequence[ColumnElement[bool]] = (),
    name: str | None = None,
) -> Page[Group]:
    where = scoped_filters(groups, organization_id=organization_id, name=name)
    async with ctx.engine.connect() as conn:
        rows, nxt = await page_rows(
            conn, select(groups), groups, limit=limit, cursor=cursor, where=[*where, *extra]
        )
        items = await _hydrate(conn, rows)
    return Page(tuple(items), nxt)


async def _bump(
    conn: AsyncConnection, ctx: StoreContext, group_id: str, if_match: int | None
) -> Group:
    """Lock the group row for this transaction, check ``if_match``, bump the version.

    The row lock (``FOR UPDATE`` on PostgreSQL; SQLite serializes writers anyway) makes
    concurrent changes to one group queue instead of failing: the version read under the
    lock is the one the If-Match is compared with, and it cannot change before commit.
    """
    locked = (
        await conn.execute(
            select(groups.c.version).where(groups.c.id == group_id).with_for_update()
        )
    ).scalar_one_or_none()
    if locked is None:
        raise NotFound(f"group {group_id!r} does not exist")
    if if_match is not None and locked != if_match:
        raise VersionConflict(f"group {group_id!r} changed since version {if_match} was read")
    await conn.execute(
        update(groups)
        .where(groups.c.id == group_id)
        .values(version=locked + 1, updated_at=ctx.clock.now())
    )
    return await load_group(conn, group_id)


async def update_group(
    ctx: StoreContext,
    group_id: str,
    *,
    if_match: int | None,
    name: str | None = None,
    description: str | None = None,
    idp_groups: Sequence[IdpGroup] | None = None,
    role_ids: Sequence[str] | None = None,
    project_ids: Sequence[str] | None = None,
    members: Sequence[GroupMember] | None = None,
) -> Group:
    async with writing(ctx.engine) as conn:
        group = await _bump(conn, ctx, group_id, if_match)
        org = group.organization_id
        values = given(name=name, description=description)
        if name is not None:
            await require_name_free_in(conn, groups, name, org, what="group", except_key=group_id)
        if values:
            await conn.execute(update(groups).where(groups.c.id == group_id).values(**values))
        if role_ids is not None:
            await _check_roles(conn, org, role_ids)
        if project_ids is not None:
            await _check_projects(conn, org, project_ids)
        if members is not None:
            await _check_members(conn, ctx, org, members)
            await conn.execute(delete(group_members).where(group_members.c.group_id == group_id))
            await _insert_members(conn, group_id, members)
        await _replace_children(
            conn, group_id, idp_groups=idp_groups, role_ids=role_ids, project_ids=project_ids
        )
        return await load_group(conn, group_id)


async def add_member(
    ctx: StoreContext, group_id: str, member: GroupMember, *, if_match: int | None = None
) -> Group:
    """Add one subject; a second add of the same (issuer, id) is ``duplicate_member``.

    Concurrent adds to one group queue on the group's row lock; none is lost.
    """
    async with writing(ctx.engine) as conn:
        group = await _bump(conn, ctx, group_id, if_match)
        await _check_members(
            conn,
            ctx,
            group.organization_id,
            [member],
            existing=[m.pair for m in group.members],
            pointer=None,
        )
        await _insert_members(conn, group_id, [member])
        return await load_group(conn, group_id)


async def remove_member(
    ctx: StoreContext, group_id: str, issuer: str, subject_id: str, *, if_match: int | None = None
) -> Group:
    """Remove one subject (concurrent changes queue on the group's row lock)."""
    async with writing(ctx.engine) as conn:
        group = await _bump(conn, ctx, group_id, if_match)
        if (issuer, subject_id) not in {m.pair for m in group.members}:
            raise NotFound(f"subject {subject_id!r} of {issuer!r} is not a member of {group_id!r}")
        await conn.execute(
            delete(group_members).where(
                group_members.c.group_id == group_id,
                group_members.c.issuer == issuer,
                group_members.c.subject_id == subject_id,
            )
        )
        return await load_group(conn, group_id)


async def delete_group(ctx: StoreContext, group_id: str, *, if_match: int | None) -> None:
    async with writing(ctx.engine) as conn:
        await delete_row(conn, groups, group_id, if_match=if_match, what="group")
