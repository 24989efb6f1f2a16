"""The ACL document agrees with ``check`` (the invariant), and its pure rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchword.authz.compile import compile_subject
from watchword.authz.evaluate import check
from watchword.authz.model import (
    AccountType,
    Effect,
    Level,
    Object,
    Permission,
    Policy,
    Registry,
    ResourceType,
    Role,
    TokenScope,
)
from watchword.errors import NotAMember
from watchword.rbac.acl import acl_document
from watchword.rbac.claims import Identity
from watchword.rbac.errors import WrongOrganizationCount
from watchword.rbac.subject import GroupFacts, SubjectFacts, resolve_subject

TYPES = {"compute:clusters": ("create", "read", "delete"), "net:ips": ("read", "use")}
REGISTRY = Registry.of(ResourceType(n, frozenset(a)) for n, a in TYPES.items())
ORGS = ("o1", "o2", "o3")
PROJECTS = {"p1": "o1", "p2": "o1", "p3": "o2", "p4": "o3"}
ROLE_NAMES = ("r1", "r2", "r3", "r4")

permissions = st.builds(
    Permission,
    st.sampled_from([*TYPES, "*"]),
    st.frozensets(st.sampled_from(["create", "read", "delete", "use", "*"]), min_size=1),
    st.sampled_from(list(Effect)),
).filter(
    lambda p: (
        p.resource_type == "*" or all(a == "*" or a in TYPES[p.resource_type] for a in p.actions)
    )
)
roles = st.builds(
    Role,
    st.just(""),
    st.dictionaries(
        st.sampled_from([Level.GLOBAL, Level.ORGANIZATION, Level.PROJECT]),
        st.lists(permissions, max_size=3).map(tuple),
        max_size=3,
    ),
)
groups = st.builds(
    GroupFacts,
    st.text("abcdef", min_size=1, max_size=4),
    st.sampled_from(ORGS),
    st.frozensets(st.sampled_from(ROLE_NAMES), max_size=3),
    st.frozensets(st.sampled_from(sorted(PROJECTS)), max_size=3),
)


def _policy(role_list: list[Role]) -> Policy:
    named = [Role(n, r.permissions) for n, r in zip(ROLE_NAMES, role_list, strict=True)]
    return Policy.build(REGISTRY, named)


def _allowed_by_document(
    doc: dict[str, object], type_: str, action: str, org: str, project: str | None
) -> bool:
    def has(endpoints: object) -> bool:
        assert isinstance(endpoints, list)
        return any(e["name"] == type_ and action in e["operations"] for e in endpoints)

    if has(doc["global"]):
        return True
    for entry in doc["organizations"]:  # type: ignore[attr-defined]
        if entry["id"] != org:
            continue
        if has(entry["endpoints"]):
            return True
        for p in entry["projects"]:
            if p["id"] == project and has(p["endpoints"]):
                return True
    return False


@settings(max_examples=300, deadline=None)
@given(
    st.lists(roles, min_size=4, max_size=4),
    st.lists(groups, max_size=6, unique_by=lambda g: g.id),
    st.frozensets(st.sampled_from(ROLE_NAMES), max_size=2),
    st.one_of(
        st.none(),
        st.frozensets(st.sampled_from(["compute:clusters:read", "*:read", "net:ips:*", "*:*"])),
    ),
)
def test_acl_document_fall_through_equals_check(
    role_list: list[Role],
    group_list: list[GroupFacts],
    bound: frozenset[str],
    scope_names: frozenset[str] | None,
) -> None:
    policy = _policy(role_list)
    facts = SubjectFacts(
        groups=tuple(group_list),
        project_orgs=PROJECTS,
        organizations=frozenset(ORGS),
        binding_role_ids=bound,
    )
    scope = None if scope_names is None else TokenScope(scope_names)
    resolution = resolve_subject(Identity("https://i", "u"), facts, scope=scope)
    compiled = compile_subject(policy, resolution.subject)
    doc = acl_document(compiled, resolution).to_dict()
    for org in resolution.member_orgs:
        for project in [None, *(p for p, o in PROJECTS.items() if o == org)]:
            for type_, actions in TYPES.items():
                for action in actions:
                    obj = Object(type_, "x", org_id=org, project_id=project)
                    expected = check(compiled, action, obj).allowed
                    assert _allowed_by_document(doc, type_, action, org, project) == expected, (
                        type_,
                        action,
                        org,
                        project,
                    )


def _facts(*group_list: GroupFacts, system_role_ids: frozenset[str] | None = None) -> SubjectFacts:
    return SubjectFacts(
        groups=group_list,
        project_orgs=PROJECTS,
        organizations=frozenset(ORGS),
        system_role_ids=system_role_ids,
    )


def test_resolve_service_account_in_two_orgs_is_refused() -> None:
    ident = Identity("https://i", "robot", AccountType.SERVICE)
    facts = _facts(GroupFacts("g1", "o1"), GroupFacts("g2", "o2"))
    with pytest.raises(WrongOrganizationCount):
        resolve_subject(ident, facts)


def test_resolve_system_account_has_no_organizations_and_global_roles() -> None:
    ident = Identity("https://i", "cn=ci")
    facts = _facts(GroupFacts("g1", "o1", frozenset({"r1"})), system_role_ids=frozenset({"r2"}))
    res = resolve_subject(ident, facts)
    assert res.subject.account_type is AccountType.SYSTEM
    assert res.member_orgs == frozenset() and res.subject.organizations == {}
    assert res.subject.global_roles == {"r2"}


def test_resolve_claimed_orgs_restrict_groups_to_those_orgs() -> None:
    ident = Identity("https://i", "u", claimed_org_ids=frozenset({"o2", "nope"}))
    facts = _facts(
        GroupFacts("g1", "o1", frozenset({"r1"})), GroupFacts("g2", "o2", frozenset({"r2"}))
    )
    res = resolve_subject(ident, facts)
    assert res.member_orgs == {"o2"}  # unknown org ids are dropped
    assert dict(res.subject.organizations) == {"o2": frozenset({"r2"})}


def test_resolve_foreign_project_link_grants_nothing() -> None:
    ident = Identity("https://i", "u")
    res = resolve_subject(
        ident, _facts(GroupFacts("g1", "o1", frozenset({"r1"}), frozenset({"p3"})))
    )
    assert res.subject.projects == {}


def test_acl_document_scoped_non_member_is_not_a_member() -> None:
    policy = _policy([Role("", {})] * 4)
    res = resolve_subject(Identity("https://i", "u"), _facts(GroupFacts("g1", "o1")))
    compiled = compile_subject(policy, res.subject)
    assert acl_document(compiled, res, organization_id="o1").organization is not None
    with pytest.raises(NotAMember):
        acl_document(compiled, res, organization_id="o2")
