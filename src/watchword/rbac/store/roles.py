"""Roles and resource types: the policy, persisted.

Every write validates against the policy built from the rows in the same transaction, so a
role naming an unregistered resource type or action is refused with the pointer of the bad
field (``/permissions/organization/0/resource_type``) and nothing changes; a resource type
change that would invalidate a stored role is refused (``in_use``). watchword's own types
(``watchword:*``) cannot be changed or deleted: the administration API depends on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import ColumnElement, Row, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword.authz.model import Policy, Registry, ResourceType
from watchword.errors import AlreadyExists, InvalidInput
from watchword.ids import new_id
from watchword.rbac.catalogue import CATALOGUE_ROLES, CATALOGUE_TYPES, TYPE_PREFIX
from watchword.rbac.errors import InUse
from watchword.rbac.model import ResourceTypeRecord, RoleRecord
from watchword.rbac.role import (
    check_role_levels,
    permissions_from_json,
    permissions_to_json,
    role_from_json,
)
from watchword.rbac.store.context import StoreContext
from watchword.rbac.store.generation import read_generation
from watchword.rbac.store.record import (
    Page,
    delete_row,
    fetch_row,
    insert_row,
    list_records,
    read_record,
    stamp_of,
    update_row,
    writing,
)
from watchword.rbac.store.scoped import require_organization
from watchword.rbac.tables import (
    group_roles,
    resource_types,
    role_bindings,
    roles,
    system_accounts,
)

__all__ = [
    "create_resource_type",
    "create_role",
    "delete_resource_type",
    "delete_role",
    "get_resource_type",
    "get_role",
    "list_resource_types",
    "list_roles",
    "load_policy",
    "seed_catalogue",
    "update_resource_type",
    "update_role",
]


def _role(row: Row[tuple[object, ...]]) -> RoleRecord:
    m = row._mapping
    return RoleRecord(
        m["id"], m["name"], m["organization_id"], m["description"], m["permissions"], stamp_of(row)
    )


def _type(row: Row[tuple[object, ...]]) -> ResourceTypeRecord:
    m = row._mapping
    return ResourceTypeRecord(m["name"], tuple(m["actions"]), m["description"], stamp_of(row))


async def load_policy(conn: AsyncConnection) -> Policy:
    """The policy held by the tables, versioned by the current generation."""
    version = await read_generation(conn)
    types = [
        ResourceType(r.name, frozenset(r.actions))
        for r in await conn.execute(select(resource_types.c.name, resource_types.c.actions))
    ]
    stored = [
        role_from_json(r.id, r.permissions)
        for r in await conn.execute(select(roles.c.id, roles.c.permissions).order_by(roles.c.id))
    ]
    return Policy.build(Registry.of(types), stored, version=version)


async def _validated_permissions(
    conn: AsyncConnection, role_id: str, permissions: object
) -> dict[str, object]:
    policy = await load_policy(conn)
    role = role_from_json(role_id, permissions)
    policy.with_role(role)  # raises with a pointer into /permissions/...
    return permissions_to_json(role.permissions)


async def _check_name_free(
    conn: AsyncConnection, name: str, organization_id: str | None, *, except_id: str | None = None
) -> None:
    org_match = (
        roles.c.organization_id.is_(None)
        if organization_id is None
        else roles.c.organization_id == organization_id
    )
    stmt = select(roles.c.id).where(roles.c.name == name, org_match)
    if except_id is not None:
        stmt = stmt.where(roles.c.id != except_id)
    if (await conn.execute(stmt)).first() is not None:
        raise AlreadyExists(f"a role named {name!r} already exists there", pointer="/name")


async def create_role(
    ctx: StoreContext,
    *,
    name: str,
    permissions: object,
    organization_id: str | None = None,
    description: str = "",
    role_id: str | None = None,
) -> RoleRecord:
    permissions_from_json(permissions)  # shape first, so its pointer wins
    check_role_levels(organization_id, permissions)
    rid = role_id or new_id("role")
    now = ctx.clock.now()
    async with writing(ctx.engine) as conn:
        if organization_id is not None:
            await require_organization(conn, organization_id)
        await _check_name_free(conn, name, organization_id)
        doc = await _validated_permissions(conn, rid, permissions)
        await insert_row(
            conn,
            roles,
            now,
            id=rid,
            name=name,
            organization_id=organization_id,
            description=description,
            permissions=doc,
        )
        return _role(await fetch_row(conn, roles, rid, what="role"))


async def get_role(ctx: StoreContext, role_id: str) -> RoleRecord:
    return await read_record(ctx.engine, roles, role_id, _role, what="role")


async def list_roles(
    ctx: StoreContext,
    *,
    organization_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    extra: Sequence[ColumnElement[bool]] = (),
    name: str | None = None,
) -> Page[RoleRecord]:
    """Roles; with ``organization_id``, the catalogue plus that organization's own roles."""
    where = []
    if organization_id is not None:
        where.append(
            or_(roles.c.organization_id.is_(None), roles.c.organization_id == organization_id)
        )
    if name is not None:
        where.append(roles.c.name == name)
    return await list_records(
        ctx.engine, roles, _role, limit=limit, cursor=cursor, where=[*where, *extra]
    )


async def update_role(
    ctx: StoreContext,
    role_id: str,
    *,
    if_match: int | None,
    name: str | None = None,
    description: str | None = None,
    permissions: object | None = None,
) -> RoleRecord:
    if permissions is not None:
        permissions_from_json(permissions)
    async with writing(ctx.engine) as conn:
        current = _role(await fetch_row(conn, roles, role_id, what="role"))
        if permissions is not None:
            check_role_levels(current.organization_id, permissions)
        values: dict[str, object] = {}
        if name is not None:
            await _check_name_free(conn, name, current.organization_id, except_id=role_id)
            values["name"] = name
        if description is not None:
            values["description"] = description
        if permissions is not None:
            values["permissions"] = await _validated_permissions(conn, role_id, permissions)
        await update_row(
            conn, roles, role_id, if_match=if_match, values=values, now=ctx.clock.now(), what="role"
        )
        return _role(await fetch_row(conn, roles, role_id, what="role"))


async def delete_role(ctx: StoreContext, role_id: str, *, if_match: int | None) -> None:
    async with writing(ctx.engine) as conn:
        await fetch_row(conn, roles, role_id, what="role")
        used = (
            await conn.execute(
                select(group_roles.c.group_id).where(group_roles.c.role_id == role_id)
            )
        ).first()
        if used is not None:
            raise InUse(f"role {role_id!r} is held by group {used.group_id!r}")
        for table in (role_bindings, system_accounts):
            for row in await conn.execute(select(table.c.id, table.c.role_ids)):
                if role_id in row.role_ids:
                    raise InUse(f"role {role_id!r} is granted by {table.name} {row.id!r}")
        await delete_row(conn, roles, role_id, if_match=if_match, what="role")


def _resource_type(name: str, actions: Sequence[str]) -> ResourceType:
    for i, action in enumerate(actions):
        if not isinstance(action, str) or not action or action != action.strip():
            raise InvalidInput("must be an action name", pointer=f"/actions/{i}")
    if len(set(actions)) != len(actions):
        raise InvalidInput("actions must be unique", pointer="/actions")
    return ResourceType(name, frozenset(actions))


def _protect(name: str) -> None:
    if name.startswith(TYPE_PREFIX):
        raise InUse(f"{name!r} is one of watchword's own resource types; it cannot change")


async def create_resource_type(
    ctx: StoreContext, *, name: str, actions: Sequence[str], description: str = ""
) -> ResourceTypeRecord:
    rt = _resource_type(name, actions)
    _protect(name)
    now = ctx.clock.now()
    async with writing(ctx.engine) as conn:
        exists = (
            await conn.execute(select(resource_types.c.name).where(resource_types.c.name == name))
        ).first()
        if exists is not None:
            raise AlreadyExists(f"resource type {name!r} already exists", pointer="/name")
        await insert_row(
            conn,
            resource_types,
            now,
            name=rt.name,
            actions=sorted(rt.actions),
            description=description,
        )
        return _type(await fetch_row(conn, resource_types, name, what="resource type"))


async def get_resource_type(ctx: StoreContext, name: str) -> ResourceTypeRecord:
    return await read_record(ctx.engine, resource_types, name, _type, what="resource type")


async def list_resource_types(
    ctx: StoreContext,
    *,
    limit: int = 50,
    cursor: str | None = None,
    extra: Sequence[ColumnElement[bool]] = (),
) -> Page[ResourceTypeRecord]:
    return await list_records(
        ctx.engine, resource_types, _type, limit=limit, cursor=cursor, where=extra
    )


async def _roles_still_valid(conn: AsyncConnection, registry: Registry, what: str) -> None:
    stored = [
        (r.id, r.permissions)
        for r in await conn.execute(select(roles.c.id, roles.c.permissions).order_by(roles.c.id))
    ]
    try:
        Policy.build(registry, [role_from_json(i, p) for i, p in stored])
    except InvalidInput as exc:
        index = int((exc.pointer or "/roles/0").split("/")[2])
        raise InUse(f"{what}: role {stored[index][0]!r} would break ({exc.detail})") from exc


async def update_resource_type(
    ctx: StoreContext,
    name: str,
    *,
    if_match: int | None,
    actions: Sequence[str] | None = None,
    description: str | None = None,
) -> ResourceTypeRecord:
    _protect(name)
    async with writing(ctx.engine) as conn:
        await fetch_row(conn, resource_types, name, what="resource type")
        values: dict[str, object] = {}
        if actions is not None:
            rt = _resource_type(name, actions)
            policy = await load_policy(conn)
            await _roles_still_valid(conn, policy.registry.with_type(rt), f"narrowing {name!r}")
            values["actions"] = sorted(rt.actions)
        if description is not None:
            values["description"] = description
        await update_row(
            conn,
            resource_types,
            name,
            if_match=if_match,
            values=values,
            now=ctx.clock.now(),
            what="resource type",
        )
        return _type(await fetch_row(conn, resource_types, name, what="resource type"))


async def delete_resource_type(ctx: StoreContext, name: str, *, if_match: int | None) -> None:
    _protect(name)
    async with writing(ctx.engine) as conn:
        await fetch_row(conn, resource_types, name, what="resource type")
        policy = await load_policy(conn)
        remaining = Registry.of(t for n, t in policy.registry.types.items() if n != name)
        await _roles_still_valid(conn, remaining, f"deleting {name!r}")
        await delete_row(conn, resource_types, name, if_match=if_match, what="resource type")


async def seed_catalogue(ctx: StoreContext) -> Mapping[str, list[str]]:
    """Add the catalogue's missing resource types and roles; edited ones are left alone."""
    now = ctx.clock.now()
    added: dict[str, list[str]] = {"resource_types": [], "roles": []}
    async with writing(ctx.engine) as conn:
        have_types = set((await conn.execute(select(resource_types.c.name))).scalars())
        for type_name, actions in CATALOGUE_TYPES.items():
            if type_name not in have_types:
                await insert_row(
                    conn,
                    resource_types,
                    now,
                    name=type_name,
                    actions=list(actions),
                    description="watchword",
                )
                added["resource_types"].append(type_name)
        have_roles = set((await conn.execute(select(roles.c.id))).scalars())
        for seed in CATALOGUE_ROLES:
            if seed.id in have_roles:
                continue
            doc = await _validated_permissions(conn, seed.id, dict(seed.permissions))
            await insert_row(
                conn,
                roles,
                now,
                id=seed.id,
                name=seed.id,
                organization_id=None,
                description=seed.description,
                permissions=doc,
            )
            added["roles"].append(seed.id)
    return added
