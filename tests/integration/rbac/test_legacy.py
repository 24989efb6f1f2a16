"""Legacy import (seed 003): ACLs computed the legacy way before the import equal the ACLs
computed from subjects after it; dry runs change nothing; a second run changes nothing."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from sqlalchemy import select

from watchword.authz.compile import compile_subject
from watchword.rbac.acl import acl_document
from watchword.rbac.claims import Identity
from watchword.rbac.errors import LegacyExportInvalid
from watchword.rbac.legacy import ChangeKind, legacy_facts, parse_export, subject_id_for_email
from watchword.rbac.model import GroupMember
from watchword.rbac.service import RbacService
from watchword.rbac.store import groups, organizations
from watchword.rbac.store.context import StoreContext
from watchword.rbac.store.generation import read_generation
from watchword.rbac.store.legacy import import_legacy_groups
from watchword.rbac.store.roles import load_policy
from watchword.rbac.tables import projects


async def _world(ctx: StoreContext) -> tuple[dict[str, object], list[str]]:
    t = secrets.token_hex(4)
    org_a = (await organizations.create_organization(ctx, name=f"legacy-a-{t}")).id
    org_b = (await organizations.create_organization(ctx, name=f"legacy-b-{t}")).id
    web = (await organizations.create_project(ctx, organization_id=org_a, name="web")).id
    api = (await organizations.create_project(ctx, organization_id=org_b, name="api")).id
    emails = [f"Alice.{t}@Example.com", f"bob.{t}@example.com", f"CAROL.{t}@example.com"]
    # A group that exists without subjects (to be filled) and one already migrated (kept).
    await groups.create_group(
        ctx, group_id=f"grp-fill-{t}", organization_id=org_a, name="fill", role_ids=["org-reader"]
    )
    await groups.create_group(
        ctx,
        group_id=f"grp-done-{t}",
        organization_id=org_b,
        name="done",
        members=[GroupMember(ctx.issuer_url, subject_id_for_email(emails[2]), emails[2])],
        role_ids=["org-admin"],
        legacy_user_ids=["u3"],
    )
    export: dict[str, object] = {
        "format": "watchword-legacy-groups/1",
        "users": [
            {"id": "u1", "email": emails[0]},
            {"id": "u2", "email": emails[1]},
            {"id": "u3", "email": emails[2]},
        ],
        "groups": [
            {
                "id": f"grp-admins-{t}",
                "organizationId": org_a,
                "name": "admins",
                "userIds": ["u1"],
                "roleIds": ["org-admin"],
            },
            {
                "id": f"grp-devs-{t}",
                "organizationId": org_a,
                "name": "devs",
                "userIds": ["u1", "u2", "u-gone"],
                "roleIds": ["project-member"],
                "projectIds": [web],
            },
            {
                "id": f"grp-b-{t}",
                "organizationId": org_b,
                "name": "b-devs",
                "userIds": ["u2"],
                "roleIds": ["project-member"],
                "projectIds": [api],
            },
            {
                "id": f"grp-fill-{t}",
                "organizationId": org_a,
                "name": "fill",
                "userIds": ["u3", "u2"],
                "roleIds": ["org-reader"],
            },
            {
                "id": f"grp-done-{t}",
                "organizationId": org_b,
                "name": "done",
                "userIds": ["u3"],
                "roleIds": ["org-admin"],
            },
        ],
    }
    return export, emails


async def _legacy_acl(
    ctx: StoreContext, export: dict[str, object], email: str
) -> dict[str, object]:
    parsed = parse_export(export)
    async with ctx.engine.connect() as conn:
        policy = await load_policy(conn)
        project_orgs = {r.id: r.organization_id for r in await conn.execute(select(projects))}
    orgs = frozenset(g.organization_id for g in parsed.groups)
    identity = Identity(ctx.issuer_url, subject_id_for_email(email))
    from watchword.rbac.subject import resolve_subject

    facts = legacy_facts(
        parsed, identity, local_issuer=ctx.issuer_url, project_orgs=project_orgs, organizations=orgs
    )
    resolution = resolve_subject(identity, facts)
    return acl_document(compile_subject(policy, resolution.subject), resolution).to_dict()


async def test_legacy_import_acls_equal_before_and_after(
    ctx: StoreContext, service: RbacService
) -> None:
    export, emails = await _world(ctx)
    before = {e: await _legacy_acl(ctx, export, e) for e in emails}
    assert before[emails[0]]["organizations"]  # the world grants something

    generation = await read_generation(ctx.engine)
    plan = await import_legacy_groups(ctx, parse_export(export), dry_run=True)
    assert [c.kind for c in plan] == [
        ChangeKind.CREATE,
        ChangeKind.CREATE,
        ChangeKind.CREATE,
        ChangeKind.FILL,
        ChangeKind.SKIP,
    ]
    assert plan[1].unresolved == ("u-gone",)
    assert await read_generation(ctx.engine) == generation  # a dry run writes nothing

    await import_legacy_groups(ctx, parse_export(export), dry_run=False)
    for email in emails:
        after = await service.acl(ctx.issuer_url, subject_id_for_email(email))
        assert after == before[email], email

    devs = await groups.get_group(ctx, str(export["groups"][1]["id"]))  # type: ignore[index]
    assert devs.legacy_user_ids == ("u1", "u2", "u-gone")  # the legacy field is kept
    assert {m.id for m in devs.members} == {
        subject_id_for_email(emails[0]),
        subject_id_for_email(emails[1]),
    }
    assert {m.email for m in devs.members} == {emails[0], emails[1]}  # display as written

    again = await import_legacy_groups(ctx, parse_export(export), dry_run=False)
    assert {c.kind for c in again} == {ChangeKind.SKIP}
    filled = await groups.get_group(ctx, str(export["groups"][3]["id"]))  # type: ignore[index]
    assert filled.legacy_user_ids == ("u3", "u2")


def test_legacy_export_errors_point_into_the_document() -> None:
    with pytest.raises(LegacyExportInvalid) as info:
        parse_export(
            {
                "format": "watchword-legacy-groups/1",
                "users": [],
                "groups": [{"id": "g", "organizationId": "o", "name": "n", "userIds": [1]}],
            }
        )
    assert info.value.pointer == "/groups/0/userIds"


def test_legacy_example_in_docs_parses() -> None:
    path = Path(__file__).parents[3] / "docs" / "examples" / "legacy-groups.json"
    export = parse_export(json.loads(path.read_text()))
    assert export.groups and export.emails
