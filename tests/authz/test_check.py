"""The worked examples of docs/authz.md, one rule per test."""

from __future__ import annotations

import pytest

from watchword.authz import (
    DecidedBy,
    Decision,
    Level,
    Object,
    Policy,
    ProjectMembership,
    Subject,
    TokenScope,
    check,
    compile_subject,
    explain,
    filter_objects,
    parse_policy,
    prepare,
)
from watchword.errors import InvalidInput, UnknownAction, UnknownResourceType

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
    c = compile_subject(policy, who(organizations={"acme": frozenset({"org-admin", "no-delete"})}))
    d = check(c, "delete", cluster(org_id="acme"))
    assert not d.allowed
    assert (d.decided_by, d.role) == (DecidedBy.ORGANIZATION, "no-delete")
    assert check(c, "update", cluster(org_id="acme")).allowed


def test_check_when_higher_level_allows_beats_lower_deny(policy: Policy) -> None:
    c = compile_subject(
        policy,
        who(
            global_roles=frozenset({"global-deleter"}),
            organizations={"acme": frozenset({"no-delete"})},
        ),
    )
    d = check(c, "delete", cluster(org_id="acme"))
    assert d.allowed
    assert d.decided_by is DecidedBy.GLOBAL


def test_check_when_org_denies_beats_owner_and_project_allow(policy: Policy) -> None:
    c = compile_subject(
        policy,
        who(
            organizations={"acme": frozenset({"member", "no-delete"})},
            projects={"p1": ProjectMembership(None, frozenset({"project-editor"}))},
        ),
    )
    me = c.key
    assert not check(c, "delete", cluster(org_id="acme", project_id="p1", owner=me)).allowed
    assert check(c, "update", cluster(org_id="acme", project_id="p1", owner=me)).allowed


def test_check_when_project_denies_beats_owner_and_acl(policy: Policy) -> None:
    c = compile_subject(
        policy,
        who(
            organizations={"acme": frozenset({"member"})},
            projects={"p1": ProjectMembership(None, frozenset({"project-blocker"}))},
        ),
    )
    obj = cluster(org_id="acme", project_id="p1", owner=c.key, acl_users={c.key: {"*"}})
    d = check(c, "update", obj)
    assert (d.allowed, d.decided_by) == (False, DecidedBy.PROJECT)
    # org level decides read before the project deny is reached
    assert check(c, "read", obj).decided_by is DecidedBy.ORGANIZATION


def test_check_when_owner_block_applies_only_to_roles_in_objects_org(policy: Policy) -> None:
    c = compile_subject(policy, who(organizations={"acme": frozenset({"member"})}))
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
    c = compile_subject(policy, who(organizations=roles, scope=narrow))
    assert check(c, "read", cluster(org_id="acme")).allowed
    d = check(c, "update", cluster(org_id="acme"))
    assert (d.allowed, d.scope_allowed, d.decided_by) == (False, False, DecidedBy.ORGANIZATION)
    assert not check(c, "read", Object(CLUSTERS, "c2", org_id="acme")).allowed
    wide = TokenScope(frozenset({"*:*"}), frozenset({("*", "*")}))
    c = compile_subject(policy, who(organizations=roles, scope=wide))
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
            organizations={"acme": frozenset({"org-admin"})},
            projects={"p1": ProjectMembership(None, frozenset({"project-editor"}))},
        ),
    )
    assert not check(c, "read", cluster()).allowed
    assert check(c, "update", cluster(project_id="p1")).allowed


def test_explain_when_denied_by_org_lists_every_stage(policy: Policy) -> None:
    c = compile_subject(policy, who(organizations={"acme": frozenset({"org-admin", "no-delete"})}))
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


# Owner stage: deny from any source beats allow from any other ---------------------------------

OWNER_POLICY = {
    "resource_types": [{"name": CLUSTERS, "actions": ["read", "delete"]}],
    "roles": [
        {
            "name": "owner-allow",
            "permissions": {"owner": [{"resource_type": CLUSTERS, "actions": ["*"]}]},
        },
        {
            "name": "owner-deny",
            "permissions": {
                "owner": [{"resource_type": CLUSTERS, "actions": ["delete"], "effect": "deny"}]
            },
        },
    ],
}
SOURCES = ("global", "organization", "project")


def holding(roles_at: dict[str, set[str]], scope: TokenScope | None = None) -> Subject:
    """alice holding each role set at one source: globally, in org acme, in project p1."""
    return who(
        global_roles=frozenset(roles_at.get("global", set())),
        organizations={"acme": frozenset(roles_at.get("organization", set()))},
        projects={"p1": ProjectMembership("acme", frozenset(roles_at.get("project", set())))},
        scope=scope,
    )


def owned(key: str, **kw: object) -> Object:
    return cluster(org_id="acme", project_id="p1", owner=key, **kw)


def every_answer(policy: Policy, subject: Subject, action: str, obj: Object) -> set[bool]:
    """check, the prepared residual, and both filter paths: one answer if they agree."""
    c = compile_subject(policy, subject)
    return {
        check(c, action, obj).allowed,
        prepare(c, action, obj.type).matches(obj),
        bool(filter_objects(c, action, [obj], prepare_from=1)),
        bool(filter_objects(c, action, [obj])),
    }


@pytest.mark.parametrize("deny_at", SOURCES)
@pytest.mark.parametrize("allow_at", SOURCES)
def test_check_when_owner_deny_and_allow_from_any_sources_denies(
    deny_at: str, allow_at: str
) -> None:
    policy = parse_policy(OWNER_POLICY)
    roles_at: dict[str, set[str]] = {deny_at: {"owner-deny"}}
    roles_at.setdefault(allow_at, set()).add("owner-allow")
    subject = holding(roles_at)
    c = compile_subject(policy, subject)
    # the user ACL would allow: the owner stage must decide before it is reached
    obj = owned(c.key, acl_users={c.key: {"*"}})
    d = check(c, "delete", obj)
    assert (d.allowed, d.decided_by, d.role) == (False, DecidedBy.OWNER, "owner-deny")
    assert d.scope_allowed is None
    assert every_answer(policy, subject, "delete", obj) == {False}
    # the deny names delete only; read is allowed by the owner allow
    assert check(c, "read", obj).decided_by is DecidedBy.OWNER
    assert every_answer(policy, subject, "read", obj) == {True}


@pytest.mark.parametrize("source", SOURCES)
def test_check_when_owner_allow_from_one_source_allows(source: str) -> None:
    policy = parse_policy(OWNER_POLICY)
    subject = holding({source: {"owner-allow"}})
    c = compile_subject(policy, subject)
    d = check(c, "delete", owned(c.key))
    assert (d.allowed, d.decided_by, d.role) == (True, DecidedBy.OWNER, "owner-allow")
    assert d.permission == policy.role("owner-allow").block(Level.OWNER)[0]
    assert every_answer(policy, subject, "delete", owned(c.key)) == {True}
    # another owner: the owner stage abstains
    assert every_answer(policy, subject, "delete", owned(f"{ISS}|bob")) == {False}


@pytest.mark.parametrize("source", SOURCES)
def test_check_when_owner_deny_from_one_source_beats_acl(source: str) -> None:
    policy = parse_policy(OWNER_POLICY)
    subject = holding({source: {"owner-deny"}}, scope=TokenScope(frozenset({"*:*"})))
    c = compile_subject(policy, subject)
    obj = owned(c.key, acl_users={c.key: {"delete"}}, acl_groups={"sre": {"delete"}})
    d = check(c, "delete", obj)
    assert (d.allowed, d.decided_by, d.role) == (False, DecidedBy.OWNER, "owner-deny")
    assert every_answer(policy, subject, "delete", obj) == {False}
    # not the owner: the ACL decides
    other = owned(f"{ISS}|bob", acl_users={c.key: {"delete"}})
    assert every_answer(policy, subject, "delete", other) == {True}


@pytest.mark.parametrize("source", ["organization", "project"])
def test_check_when_owner_vote_held_elsewhere_abstains(source: str) -> None:
    policy = parse_policy(OWNER_POLICY)
    subject = holding({source: {"owner-allow"}})
    c = compile_subject(policy, subject)
    elsewhere = Object(CLUSTERS, "c1", org_id="globex", project_id="p2", owner=c.key)
    assert check(c, "delete", elsewhere).decided_by is DecidedBy.NOTHING
    assert every_answer(policy, subject, "delete", elsewhere) == {False}


# Scope refusals keep what decided --------------------------------------------------------------


def test_check_when_scope_refuses_role_allow_keeps_role_and_permission(policy: Policy) -> None:
    narrow = TokenScope(frozenset({f"{CLUSTERS}:read"}))
    c = compile_subject(policy, who(organizations={"acme": frozenset({"org-admin"})}, scope=narrow))
    admin_perm = policy.role("org-admin").block(Level.ORGANIZATION)[0]
    assert check(c, "update", cluster(org_id="acme")) == Decision(
        allowed=False,
        decided_by=DecidedBy.ORGANIZATION,
        role="org-admin",
        permission=admin_perm,
        acl_entry=None,
        scope_allowed=False,
    )
    assert check(c, "read", cluster(org_id="acme")) == Decision(
        allowed=True,
        decided_by=DecidedBy.ORGANIZATION,
        role="org-admin",
        permission=admin_perm,
        scope_allowed=True,
    )


def test_check_when_scope_refuses_acl_allow_keeps_acl_entry(policy: Policy) -> None:
    only_c2 = TokenScope(frozenset({"*:*"}), frozenset({(CLUSTERS, "c2")}))
    c = compile_subject(policy, who(groups=frozenset({"sre"}), scope=only_c2))
    for obj, entry in (
        (cluster(acl_users={c.key: {"use"}}), f"user:{c.key}"),
        (cluster(acl_groups={"sre": {"use"}}), "group:sre"),
    ):
        assert check(c, "use", obj) == Decision(
            allowed=False, decided_by=DecidedBy.ACL, acl_entry=entry, scope_allowed=False
        )
    allowed = check(c, "use", Object(CLUSTERS, "c2", acl_groups={"sre": {"use"}}))
    assert allowed == Decision(
        allowed=True, decided_by=DecidedBy.ACL, acl_entry="group:sre", scope_allowed=True
    )


def test_check_when_roles_deny_under_scope_leaves_scope_unconsulted(policy: Policy) -> None:
    c = compile_subject(
        policy,
        who(organizations={"acme": frozenset({"no-delete"})}, scope=TokenScope(frozenset({"*:*"}))),
    )
    d = check(c, "delete", cluster(org_id="acme"))
    assert (d.allowed, d.decided_by, d.role, d.scope_allowed) == (
        False,
        DecidedBy.ORGANIZATION,
        "no-delete",
        None,
    )
    assert check(c, "read", cluster(org_id="acme")) == Decision(
        allowed=False, decided_by=DecidedBy.NOTHING
    )


# Prepared and filter_objects -------------------------------------------------------------------


def test_prepare_when_global_role_allows_gives_a_true_residual(policy: Policy) -> None:
    c = compile_subject(policy, who(global_roles=frozenset({"global-deleter"})))
    prepared = prepare(c, "delete", CLUSTERS)
    assert prepared.to_dict() == {
        "type": CLUSTERS,
        "action": "delete",
        "residual": {"op": "true"},
    }
    assert (prepared.node_count, prepared.subject_key) == (1, c.key)
    assert repr(prepared) == f"Prepared(type={CLUSTERS!r}, action='delete', nodes=1)"
    assert prepared.matches(cluster())
    # a scope without the name leaves nothing, whatever the roles
    c = compile_subject(
        policy, who(global_roles=frozenset({"global-deleter"}), scope=TokenScope(frozenset()))
    )
    assert prepare(c, "delete", CLUSTERS).to_dict()["residual"] == {"op": "false"}


def test_prepared_when_object_of_another_type_raises(policy: Policy) -> None:
    c = compile_subject(policy, who(global_roles=frozenset({"global-deleter"})))
    prepared = prepare(c, "delete", CLUSTERS)
    with pytest.raises(
        InvalidInput, match=r"^prepared for type 'compute:clusters', got 'identity:projects'$"
    ):
        prepared.matches(Object("identity:projects", "p"))


@pytest.mark.parametrize("prepare_from", [1, 1000])
def test_filter_objects_keeps_allowed_in_order_whatever_the_types(
    policy: Policy, prepare_from: int
) -> None:
    c = compile_subject(policy, who(organizations={"acme": frozenset({"member"})}))
    objs = [Object(CLUSTERS, f"c{i}", org_id=org) for i, org in enumerate(["acme", "x", "acme"])]
    kept = filter_objects(c, "read", iter(objs), prepare_from=prepare_from)
    assert [o.id for o in kept] == ["c0", "c2"]
    assert filter_objects(c, "read", [], prepare_from=prepare_from) == []
    shared = Object("identity:projects", "p9", acl_users={c.key: ["read"]})
    mixed = [objs[0], shared, Object("identity:projects", "p8", org_id="acme"), *objs[1:]]
    expected = [o for o in mixed if check(c, "read", o).allowed]
    assert filter_objects(c, "read", mixed, prepare_from=prepare_from) == expected
    assert [o.id for o in expected] == ["c0", "p9", "c2"]
    with pytest.raises(UnknownResourceType):
        filter_objects(c, "read", [*objs, Object("nope:things", "n")], prepare_from=prepare_from)


def test_check_when_roles_deny_under_restricted_scope_leaves_scope_unconsulted(
    policy: Policy,
) -> None:
    only_c1 = TokenScope(frozenset({"*:*"}), frozenset({(CLUSTERS, "c1")}))
    c = compile_subject(
        policy, who(organizations={"acme": frozenset({"no-delete"})}, scope=only_c1)
    )
    d = check(c, "delete", Object(CLUSTERS, "c2", org_id="acme"))
    assert (d.allowed, d.decided_by, d.role, d.scope_allowed) == (
        False,
        DecidedBy.ORGANIZATION,
        "no-delete",
        None,
    )
    assert check(c, "read", Object(CLUSTERS, "c2", org_id="acme")) == Decision(
        allowed=False, decided_by=DecidedBy.NOTHING
    )
