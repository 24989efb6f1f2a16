"""The worked examples of docs/authz.md, one rule per test."""

from __future__ import annotations

import pytest

from watchword.authz import (
    DecidedBy,
    Object,
    Policy,
    Subject,
    TokenScope,
    check,
    compile_subject,
    explain,
    parse_policy,
)
from watchword.errors import UnknownAction, UnknownResourceType

CLUSTERS = "compute:clusters"
ISS = "https://id.example.com"

POLICY = {
    "resource_types": [
        {"name": CLUSTERS, "actions": ["create", "read", "update", "delete", "use"]},
        {"name": "identity:projects", "actions": ["create", "read", "update", "delete"]},
    ],
    "roles": [
        {
            "name": "org-admin",
            "permissions": {"organization": [{"resource_type": "*", "actions": ["*"]}]},
        },
        {
            "name": "no-delete",
            "permissions": {
                "organization": [
                    {"resource_type": CLUSTERS, "actions": ["delete"], "effect": "deny"}
                ]
            },
        },
        {
            "name": "member",
            "permissions": {
                "organization": [{"resource_type": CLUSTERS, "actions": ["read"]}],
                "owner": [{"resource_type": CLUSTERS, "actions": ["*"]}],
            },
        },
        {
            "name": "global-deleter",
            "permissions": {"global": [{"resource_type": CLUSTERS, "actions": ["delete"]}]},
        },
        {
            "name": "project-editor",
            "permissions": {
                "project": [{"resource_type": CLUSTERS, "actions": ["update", "delete"]}]
            },
        },
        {
            "name": "project-blocker",
            "permissions": {
                "project": [{"resource_type": "*", "actions": ["*"], "effect": "deny"}]
            },
        },
    ],
}


@pytest.fixture
def policy() -> Policy:
    return parse_policy(POLICY)


def who(**kw: object) -> Subject:
    return Subject(ISS, "alice", **kw)  # type: ignore[arg-type]


def cluster(**kw: object) -> Object:
    return Object(CLUSTERS, "c1", **kw)  # type: ignore[arg-type]


def test_check_when_deny_and_allow_at_same_level_denies(policy: Policy) -> None:
    c = compile_subject(policy, who(org_roles={"acme": frozenset({"org-admin", "no-delete"})}))
    d = check(c, "delete", cluster(org_id="acme"))
    assert not d.allowed
    assert (d.decided_by, d.role) == (DecidedBy.ORGANIZATION, "no-delete")
    assert check(c, "update", cluster(org_id="acme")).allowed


def test_check_when_higher_level_allows_beats_lower_deny(policy: Policy) -> None:
    c = compile_subject(
        policy,
        who(
            global_roles=frozenset({"global-deleter"}),
            org_roles={"acme": frozenset({"no-delete"})},
        ),
    )
    d = check(c, "delete", cluster(org_id="acme"))
    assert d.allowed
    assert d.decided_by is DecidedBy.GLOBAL


def test_check_when_org_denies_beats_owner_and_project_allow(policy: Policy) -> None:
    c = compile_subject(
        policy,
        who(
            org_roles={"acme": frozenset({"member", "no-delete"})},
            project_roles={"p1": frozenset({"project-editor"})},
        ),
    )
    me = c.key
    assert not check(c, "delete", cluster(org_id="acme", project_id="p1", owner=me)).allowed
    assert check(c, "update", cluster(org_id="acme", project_id="p1", owner=me)).allowed


def test_check_when_project_denies_beats_owner_and_acl(policy: Policy) -> None:
    c = compile_subject(
        policy,
        who(
            org_roles={"acme": frozenset({"member"})},
            project_roles={"p1": frozenset({"project-blocker"})},
        ),
    )
    obj = cluster(org_id="acme", project_id="p1", owner=c.key, acl_users={c.key: {"*"}})
    d = check(c, "update", obj)
    assert (d.allowed, d.decided_by) == (False, DecidedBy.PROJECT)
    # org level decides read before the project deny is reached
    assert check(c, "read", obj).decided_by is DecidedBy.ORGANIZATION


def test_check_when_owner_block_applies_only_to_roles_in_objects_org(policy: Policy) -> None:
    c = compile_subject(policy, who(org_roles={"acme": frozenset({"member"})}))
    assert check(c, "delete", cluster(org_id="acme", owner=c.key)).allowed
    # same ownership in an organization where the subject holds no role: nothing applies
    assert not check(c, "delete", cluster(org_id="globex", owner=c.key)).allowed
    # not the owner
    assert not check(c, "delete", cluster(org_id="acme", owner=f"{ISS}|bob")).allowed


def test_check_when_acl_grants_user_or_group_allows(policy: Policy) -> None:
    c = compile_subject(policy, who(groups=frozenset({"sre"})))
    d = check(c, "use", cluster(acl_users={c.key: {"use"}}))
    assert (d.allowed, d.acl_entry) == (True, f"user:{c.key}")
    d = check(c, "use", cluster(acl_groups={"sre": {"*"}}))
    assert (d.allowed, d.acl_entry) == (True, "group:sre")
    assert not check(c, "use", cluster(acl_groups={"dba": {"*"}})).allowed
    assert not check(c, "delete", cluster(acl_users={c.key: {"use"}})).allowed


def test_check_when_nothing_matches_denies_by_default(policy: Policy) -> None:
    c = compile_subject(policy, who())
    d = check(c, "read", cluster())
    assert (d.allowed, d.decided_by) == (False, DecidedBy.NOTHING)
    assert "default is deny" in explain(c, "read", cluster()).to_text()


def test_check_when_scope_names_or_allow_list_refuse_denies(policy: Policy) -> None:
    roles = {"acme": frozenset({"org-admin"})}
    narrow = TokenScope(frozenset({f"{CLUSTERS}:read"}), frozenset({(CLUSTERS, "c1")}))
    c = compile_subject(policy, who(org_roles=roles, scope=narrow))
    assert check(c, "read", cluster(org_id="acme")).allowed
    d = check(c, "update", cluster(org_id="acme"))
    assert (d.allowed, d.scope_allowed, d.decided_by) == (False, False, DecidedBy.ORGANIZATION)
    assert not check(c, "read", Object(CLUSTERS, "c2", org_id="acme")).allowed
    wide = TokenScope(frozenset({"*:*"}), frozenset({("*", "*")}))
    c = compile_subject(policy, who(org_roles=roles, scope=wide))
    assert check(c, "delete", Object(CLUSTERS, "c9", org_id="acme")).allowed


def test_check_when_scope_allows_but_roles_do_not_denies(policy: Policy) -> None:
    c = compile_subject(policy, who(scope=TokenScope(frozenset({"*:*"}))))
    assert not check(c, "read", cluster(org_id="acme")).allowed


def test_check_when_type_or_action_unknown_raises(policy: Policy) -> None:
    c = compile_subject(policy, who(global_roles=frozenset({"global-deleter"})))
    with pytest.raises(UnknownResourceType):
        check(c, "read", Object("compute:nope", "x"))
    with pytest.raises(UnknownAction):
        check(c, "fly", cluster())
    with pytest.raises(UnknownAction):  # an action of another type is not an action of this one
        check(c, "use", Object("identity:projects", "p"))


def test_check_when_object_has_no_org_or_project_falls_through(policy: Policy) -> None:
    c = compile_subject(
        policy,
        who(
            org_roles={"acme": frozenset({"org-admin"})},
            project_roles={"p1": frozenset({"project-editor"})},
        ),
    )
    assert not check(c, "read", cluster()).allowed
    assert check(c, "update", cluster(project_id="p1")).allowed


def test_explain_when_denied_by_org_lists_every_stage(policy: Policy) -> None:
    c = compile_subject(policy, who(org_roles={"acme": frozenset({"org-admin", "no-delete"})}))
    why = explain(c, "delete", cluster(org_id="acme"))
    verdicts = {s.stage.value: s.verdict.value for s in why.stages}
    assert verdicts == {
        "global": "abstain",
        "organization": "deny",
        "project": "not_reached",
        "owner": "not_reached",
        "acl": "not_reached",
    }
    org = why.stages[1]
    assert {(m.role, m.permission.effect.value) for m in org.matches if m.permission} == {
        ("org-admin", "allow"),
        ("no-delete", "deny"),
    }
    data = why.to_dict()
    assert data["decision"]["decided_by"] == "organization"  # type: ignore[index]
    assert "no-delete" in why.to_text()
