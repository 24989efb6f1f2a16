"""Service accounts, system accounts, role bindings and trusted issuers.

- A service account belongs to exactly one organization, fixed at creation; moving it is
  refused (``service_account_foreign_organization``), and deleting it removes it from its
  groups.
- System accounts and role bindings hold catalogue roles only (global grants).
- An issuer is matched exactly on its URL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy import ColumnElement, Row, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword.errors import AlreadyExists, InvalidInput, UnknownRole
from watchword.ids import new_id
from watchword.rbac.claims import service_account_subject
from watchword.rbac.errors import ServiceAccountForeignOrg
from watchword.rbac.model import IssuerRecord, RoleBinding, ServiceAccount, SystemAccount
from watchword.rbac.store.context import StoreContext
from watchword.rbac.store.record import (
    Page,
    RowOf,
    delete_row,
    fetch_row,
    given,
    insert_row,
    list_records,
    read_record,
    stamp_of,
    update_row,
    writing,
)
from watchword.rbac.store.scoped import (
    ScopedRecords,
    create_scoped,
    get_scoped,
    list_scoped,
    update_scoped,
)
from watchword.rbac.tables import (
    group_members,
    issuers,
    role_bindings,
    roles,
    service_accounts,
    system_accounts,
)

__all__ = [
    "create_binding",
    "create_issuer",
    "create_service_account",
    "create_system_account",
    "delete_binding",
    "delete_issuer",
    "SubjectDeleted",
    "delete_service_account",
    "delete_system_account",
    "get_binding",
    "get_issuer",
    "get_issuer_by_url",
    "get_service_account",
    "get_system_account",
    "list_bindings",
    "list_issuers",
    "list_service_accounts",
    "list_system_accounts",
    "update_binding",
    "update_issuer",
    "update_service_account",
    "update_system_account",
]


G = TypeVar("G", SystemAccount, RoleBinding)


def _sa(row: Row[tuple[object, ...]]) -> ServiceAccount:
    m = row._mapping
    return ServiceAccount(m["id"], m["organization_id"], m["name"], m["description"], stamp_of(row))


def _sys(row: Row[tuple[object, ...]]) -> SystemAccount:
    m = row._mapping
    return SystemAccount(
        m["id"], m["issuer"], m["subject_id"], tuple(m["role_ids"]), m["description"], stamp_of(row)
    )


def _binding(row: Row[tuple[object, ...]]) -> RoleBinding:
    m = row._mapping
    return RoleBinding(
        m["id"],
        m["issuer"],
        m["subject_id"],
        m["idp_group"],
        tuple(m["role_ids"]),
        m["description"],
        stamp_of(row),
    )


def _issuer(row: Row[tuple[object, ...]]) -> IssuerRecord:
    m = row._mapping
    return IssuerRecord(
        m["id"],
        m["url"],
        tuple(m["audiences"]),
        m["subject_claim"],
        m["groups_claim"],
        m["authz_claim"],
        bool(m["membership_from_claims"]),
        stamp_of(row),
    )


async def _check_global_roles(conn: AsyncConnection, role_ids: Sequence[str]) -> None:
    if not role_ids:
        raise InvalidInput("at least one role is needed", pointer="/role_ids")
    found = {
        r.id: r.organization_id
        for r in await conn.execute(
            select(roles.c.id, roles.c.organization_id).where(roles.c.id.in_(list(role_ids)))
        )
    }
    for i, role_id in enumerate(role_ids):
        if role_id not in found or found[role_id] is not None:
            raise UnknownRole(
                f"role {role_id!r} is not a catalogue role (global grants take catalogue roles)",
                pointer=f"/role_ids/{i}",
            )


async def _update_grant(
    ctx: StoreContext,
    table: Table,
    key: str,
    of: Callable[[RowOf], G],
    *,
    what: str,
    if_match: int | None,
    role_ids: Sequence[str] | None,
    description: str | None,
) -> G:
    """Change a global grant's roles (catalogue roles only) or description."""
    async with writing(ctx.engine) as conn:
        values: dict[str, object] = {}
        if role_ids is not None:
            await _check_global_roles(conn, role_ids)
            values["role_ids"] = sorted(set(role_ids))
        if description is not None:
            values["description"] = description
        await update_row(
            conn, table, key, if_match=if_match, values=values, now=ctx.clock.now(), what=what
        )
        return of(await fetch_row(conn, table, key, what=what))


# Service accounts --------------------------------------------------------------------------


SERVICE_ACCOUNTS = ScopedRecords(service_accounts, "service account", "sa", _sa)


async def create_service_account(
    ctx: StoreContext, *, organization_id: str, name: str, description: str = ""
) -> ServiceAccount:
    return await create_scoped(
        ctx, SERVICE_ACCOUNTS, organization_id=organization_id, name=name, description=description
    )


async def get_service_account(
    ctx: StoreContext, sa_id: str, *, organization_id: str | None = None
) -> ServiceAccount:
    return await get_scoped(ctx, SERVICE_ACCOUNTS, sa_id, organization_id=organization_id)


async def list_service_accounts(
    ctx: StoreContext,
    *,
    organization_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    extra: Sequence[ColumnElement[bool]] = (),
    name: str | None = None,
) -> Page[ServiceAccount]:
    return await list_scoped(
        ctx,
        SERVICE_ACCOUNTS,
        organization_id=organization_id,
        name=name,
        limit=limit,
        cursor=cursor,
        extra=extra,
    )


async def update_service_account(
    ctx: StoreContext,
    sa_id: str,
    *,
    if_match: int | None,
    name: str | None = None,
    description: str | None = None,
    organization_id: str | None = None,
) -> ServiceAccount:
    def stays_home(current: ServiceAccount) -> None:
        if organization_id is not None and organization_id != current.organization_id:
            raise ServiceAccountForeignOrg(
                f"service account {sa_id!r} belongs to {current.organization_id!r}; "
                "it cannot move to another organization",
                pointer="/organization_id",
            )

    return await update_scoped(
        ctx,
        SERVICE_ACCOUNTS,
        sa_id,
        if_match=if_match,
        name=name,
        description=description,
        check=stays_home,
    )


SubjectDeleted = Callable[[AsyncConnection, str, str], Awaitable[None]]
"""``hook(conn, issuer, subject)``: called inside the deleting transaction, so what another part
holds for that subject (its API tokens) ends in the same commit."""


async def delete_service_account(
    ctx: StoreContext,
    sa_id: str,
    *,
    if_match: int | None,
    on_deleted: SubjectDeleted | None = None,
) -> None:
    """Delete the account, its group memberships and the role bindings that name it, and run
    ``on_deleted`` (e.g. revoke its tokens), all in one transaction."""
    async with writing(ctx.engine) as conn:
        await delete_row(conn, service_accounts, sa_id, if_match=if_match, what="service account")
        issuer, subject = service_account_subject(ctx.issuer_url, sa_id)
        await conn.execute(
            delete(group_members).where(
                group_members.c.issuer == issuer, group_members.c.subject_id == subject
            )
        )
        await conn.execute(
            delete(role_bindings).where(
                role_bindings.c.issuer == issuer, role_bindings.c.subject_id == subject
            )
        )
        if on_deleted is not None:
            await on_deleted(conn, issuer, subject)


# System accounts ---------------------------------------------------------------------------


async def create_system_account(
    ctx: StoreContext,
    *,
    subject_id: str,
    role_ids: Sequence[str],
    issuer: str | None = None,
    description: str = "",
) -> SystemAccount:
    now = ctx.clock.now()
    sid = new_id("sys")
    async with writing(ctx.engine) as conn:
        await _check_global_roles(conn, role_ids)
        await insert_row(
            conn,
            system_accounts,
            now,
            id=sid,
            issuer=issuer or ctx.issuer_url,
            subject_id=subject_id,
            role_ids=sorted(set(role_ids)),
            description=description,
        )
        return _sys(await fetch_row(conn, system_accounts, sid, what="system account"))


async def get_system_account(ctx: StoreContext, sys_id: str) -> SystemAccount:
    return await read_record(ctx.engine, system_accounts, sys_id, _sys, what="system account")


async def list_system_accounts(
    ctx: StoreContext,
    *,
    limit: int = 50,
    cursor: str | None = None,
    extra: Sequence[ColumnElement[bool]] = (),
) -> Page[SystemAccount]:
    return await list_records(
        ctx.engine, system_accounts, _sys, limit=limit, cursor=cursor, where=extra
    )


async def update_system_account(
    ctx: StoreContext,
    sys_id: str,
    *,
    if_match: int | None,
    role_ids: Sequence[str] | None = None,
    description: str | None = None,
) -> SystemAccount:
    return await _update_grant(
        ctx,
        system_accounts,
        sys_id,
        _sys,
        what="system account",
        if_match=if_match,
        role_ids=role_ids,
        description=description,
    )


async def delete_system_account(ctx: StoreContext, sys_id: str, *, if_match: int | None) -> None:
    async with writing(ctx.engine) as conn:
        await delete_row(conn, system_accounts, sys_id, if_match=if_match, what="system account")


# Role bindings -----------------------------------------------------------------------------


def _check_selector(subject_id: str | None, idp_group: str | None) -> None:
    if (subject_id is None) == (idp_group is None):
        raise InvalidInput(
            "a binding selects either a subject (or '*') or an IdP group, not both or neither",
            pointer="/subject_id",
        )


async def create_binding(
    ctx: StoreContext,
    *,
    issuer: str,
    role_ids: Sequence[str],
    subject_id: str | None = None,
    idp_group: str | None = None,
    description: str = "",
) -> RoleBinding:
    _check_selector(subject_id, idp_group)
    now = ctx.clock.now()
    bid = new_id("rb")
    async with writing(ctx.engine) as conn:
        await _check_global_roles(conn, role_ids)
        await insert_row(
            conn,
            role_bindings,
            now,
            id=bid,
            issuer=issuer,
            subject_id=subject_id,
            idp_group=idp_group,
            role_ids=sorted(set(role_ids)),
            description=description,
        )
        return _binding(await fetch_row(conn, role_bindings, bid, what="role binding"))


async def get_binding(ctx: StoreContext, binding_id: str) -> RoleBinding:
    return await read_record(ctx.engine, role_bindings, binding_id, _binding, what="role binding")


async def list_bindings(
    ctx: StoreContext,
    *,
    limit: int = 50,
    cursor: str | None = None,
    extra: Sequence[ColumnElement[bool]] = (),
    issuer: str | None = None,
) -> Page[RoleBinding]:
    where = [] if issuer is None else [role_bindings.c.issuer == issuer]
    return await list_records(
        ctx.engine, role_bindings, _binding, limit=limit, cursor=cursor, where=[*where, *extra]
    )


async def update_binding(
    ctx: StoreContext,
    binding_id: str,
    *,
    if_match: int | None,
    role_ids: Sequence[str] | None = None,
    description: str | None = None,
) -> RoleBinding:
    return await _update_grant(
        ctx,
        role_bindings,
        binding_id,
        _binding,
        what="role binding",
        if_match=if_match,
        role_ids=role_ids,
        description=description,
    )


async def delete_binding(ctx: StoreContext, binding_id: str, *, if_match: int | None) -> None:
    async with writing(ctx.engine) as conn:
        await delete_row(conn, role_bindings, binding_id, if_match=if_match, what="role binding")


# Issuers -----------------------------------------------------------------------------------


async def create_issuer(
    ctx: StoreContext,
    *,
    url: str,
    authz_claim: str,
    audiences: Sequence[str] = (),
    subject_claim: str = "sub",
    groups_claim: str | None = None,
    membership_from_claims: bool = False,
) -> IssuerRecord:
    if "|" in url or not url.startswith(("https://", "http://")):
        raise InvalidInput("an issuer is an http(s) URL without '|'", pointer="/url")
    now = ctx.clock.now()
    iid = new_id("iss")
    async with writing(ctx.engine) as conn:
        if (await conn.execute(select(issuers.c.id).where(issuers.c.url == url))).first():
            raise AlreadyExists(f"issuer {url!r} is already configured", pointer="/url")
        await insert_row(
            conn,
            issuers,
            now,
            id=iid,
            url=url,
            audiences=list(audiences),
            subject_claim=subject_claim,
            groups_claim=groups_claim,
            authz_claim=authz_claim,
            membership_from_claims=membership_from_claims,
        )
        return _issuer(await fetch_row(conn, issuers, iid, what="issuer"))


async def get_issuer(ctx: StoreContext, issuer_id: str) -> IssuerRecord:
    return await read_record(ctx.engine, issuers, issuer_id, _issuer, what="issuer")


async def get_issuer_by_url(conn: AsyncConnection, url: str) -> IssuerRecord | None:
    row = (await conn.execute(select(issuers).where(issuers.c.url == url))).first()
    return None if row is None else _issuer(row)


async def list_issuers(
    ctx: StoreContext,
    *,
    limit: int = 50,
    cursor: str | None = None,
    extra: Sequence[ColumnElement[bool]] = (),
    url: str | None = None,
) -> Page[IssuerRecord]:
    where = [] if url is None else [issuers.c.url == url]
    return await list_records(
        ctx.engine, issuers, _issuer, limit=limit, cursor=cursor, where=[*where, *extra]
    )


async def update_issuer(
    ctx: StoreContext,
    issuer_id: str,
    *,
    if_match: int | None,
    audiences: Sequence[str] | None = None,
    subject_claim: str | None = None,
    groups_claim: str | None = None,
    authz_claim: str | None = None,
    membership_from_claims: bool | None = None,
    clear_groups_claim: bool = False,
) -> IssuerRecord:
    """Change the given fields (``None``: unchanged); ``clear_groups_claim`` unsets the
    groups claim (no IdP groups read from this issuer's tokens)."""
    values = given(
        audiences=None if audiences is None else list(audiences),
        subject_claim=subject_claim,
        groups_claim=groups_claim,
        authz_claim=authz_claim,
        membership_from_claims=membership_from_claims,
    )
    if clear_groups_claim:
        values["groups_claim"] = None
    async with writing(ctx.engine) as conn:
        await update_row(
            conn,
            issuers,
            issuer_id,
            if_match=if_match,
            values=values,
            now=ctx.clock.now(),
            what="issuer",
        )
        return _issuer(await fetch_row(conn, issuers, issuer_id, what="issuer"))


async def delete_issuer(ctx: StoreContext, issuer_id: str, *, if_match: int | None) -> None:
    async with writing(ctx.engine) as conn:
        await delete_row(conn, issuers, issuer_id, if_match=if_match, what="issuer")
