"""Gather :class:`~watchword.rbac.subject.SubjectFacts` for one identity (a few indexed reads).

Also resolves how to read an issuer's claims (:func:`issuer_trust`): watchword's own issuer
(``settings.issuer_url``, never a Host header) is local; a configured issuer is read as
configured; any other issuer is untrusted for membership.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword.rbac.claims import SERVICE_ACCOUNT_PREFIX, Identity, IssuerTrust
from watchword.rbac.store.accounts import get_issuer_by_url
from watchword.rbac.subject import GroupFacts, SubjectFacts
from watchword.rbac.tables import (
    group_idp_groups,
    group_members,
    group_projects,
    group_roles,
    groups,
    organizations,
    projects,
    role_bindings,
    service_accounts,
    system_accounts,
)

__all__ = ["issuer_trust", "load_facts"]


async def issuer_trust(
    conn: AsyncConnection, issuer_url: str, *, local_issuer: str, default_authz_claim: str
) -> IssuerTrust:
    record = await get_issuer_by_url(conn, issuer_url)
    local = issuer_url == local_issuer
    if record is None:
        return IssuerTrust(issuer_url, default_authz_claim, local=local)
    return IssuerTrust(
        url=record.url,
        authz_claim=record.authz_claim,
        membership_from_claims=record.membership_from_claims,
        groups_claim=record.groups_claim,
        subject_claim=record.subject_claim,
        local=local,
    )


async def load_facts(
    conn: AsyncConnection, identity: Identity, *, local_issuer: str
) -> SubjectFacts:
    issuer, subject_id = identity.pair
    by_member = select(group_members.c.group_id.label("gid")).where(
        group_members.c.subject_id == subject_id, group_members.c.issuer == issuer
    )
    if identity.idp_groups:
        by_idp = select(group_idp_groups.c.group_id.label("gid")).where(
            group_idp_groups.c.issuer == issuer,
            group_idp_groups.c.name.in_(sorted(identity.idp_groups)),
        )
        holders = union(by_member, by_idp).subquery("holders")
    else:
        holders = by_member.subquery("holders")
    # Joins on the holders subquery rather than IN lists of group ids: the statements stay
    # the same size (and cached) however many groups hold the subject.
    group_org: dict[str, str] = {}
    for gid, org in await conn.execute(
        select(groups.c.id, groups.c.organization_id).join(holders, holders.c.gid == groups.c.id)
    ):
        group_org[gid] = org
    roles_of: dict[str, set[str]] = {g: set() for g in group_org}
    projects_of: dict[str, set[str]] = {g: set() for g in group_org}
    project_orgs: dict[str, str] = {}
    if group_org:
        for gid, role_id in await conn.execute(
            select(group_roles.c.group_id, group_roles.c.role_id).join(
                holders, holders.c.gid == group_roles.c.group_id
            )
        ):
            roles_of[gid].add(role_id)
        for gid, project_id, org in await conn.execute(
            select(
                group_projects.c.group_id, group_projects.c.project_id, projects.c.organization_id
            )
            .join(projects, projects.c.id == group_projects.c.project_id)
            .join(holders, holders.c.gid == group_projects.c.group_id)
        ):
            projects_of[gid].add(project_id)
            project_orgs[project_id] = org
    group_ids = sorted(group_org)

    home: str | None = None
    if issuer == local_issuer and subject_id.startswith(SERVICE_ACCOUNT_PREFIX):
        home = (
            await conn.execute(
                select(service_accounts.c.organization_id).where(
                    service_accounts.c.id == subject_id.removeprefix(SERVICE_ACCOUNT_PREFIX)
                )
            )
        ).scalar_one_or_none()

    candidates = (
        set(group_org.values()) | set(identity.claimed_org_ids or ()) | ({home} if home else set())
    )
    existing: frozenset[str] = frozenset()
    if candidates:
        existing = frozenset(
            (
                await conn.execute(
                    select(organizations.c.id).where(organizations.c.id.in_(sorted(candidates)))
                )
            ).scalars()
        )

    selectors = [role_bindings.c.subject_id == subject_id, role_bindings.c.subject_id == "*"]
    if identity.idp_groups:
        selectors.append(role_bindings.c.idp_group.in_(sorted(identity.idp_groups)))
    binding_roles: set[str] = set()
    for row in await conn.execute(
        select(role_bindings.c.role_ids).where(role_bindings.c.issuer == issuer, or_(*selectors))
    ):
        binding_roles.update(row.role_ids)

    system_row = (
        await conn.execute(
            select(system_accounts.c.role_ids).where(
                and_(system_accounts.c.issuer == issuer, system_accounts.c.subject_id == subject_id)
            )
        )
    ).first()

    interned: dict[frozenset[str], frozenset[str]] = {}
    return SubjectFacts(
        groups=tuple(
            GroupFacts(
                g,
                group_org[g],
                interned.setdefault(frozenset(roles_of[g]), frozenset(roles_of[g])),
                frozenset(projects_of[g]),
            )
            for g in group_ids
        ),
        project_orgs=project_orgs,
        organizations=existing,
        home_organization_id=home,
        binding_role_ids=frozenset(binding_roles),
        system_role_ids=None if system_row is None else frozenset(system_row.role_ids),
    )
