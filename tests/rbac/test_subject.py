"""resolve_subject's output itself, against expectations written from the rules in docs/rbac.md.

The ACL-document property compares the document with ``check`` over one resolved subject,
so a wrongly resolved subject is invisible to it; these tests look at the subject directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchword.authz.model import AccountType, ProjectMembership, TokenScope
from watchword.rbac.claims import Identity
from watchword.rbac.errors import WrongOrganizationCount
from watchword.rbac.subject import GroupFacts, SubjectFacts, resolve_subject

ISS = "https://idp.example"
CLAIM = "https://watchword.dev/authz"


def user(claimed: frozenset[str] | None = None) -> Identity:
    return Identity(ISS, "alice", AccountType.USER, claimed)


def service(claimed: frozenset[str] | None = None) -> Identity:
    return Identity(ISS, "sa:robot", AccountType.SERVICE, claimed)


# Users ---------------------------------------------------------------------------------------


def test_resolve_subject_two_groups_in_one_org_unites_their_roles() -> None:
    facts = SubjectFacts(
        groups=(
            GroupFacts("g1", "o1", frozenset({"reader"})),
            GroupFacts("g2", "o1", frozenset({"writer"})),
        ),
        organizations=frozenset({"o1"}),
    )
    r = resolve_subject(user(), facts)
    assert r.member_orgs == {"o1"}
    assert dict(r.subject.organizations) == {"o1": {"reader", "writer"}}
    assert r.subject.groups == {"g1", "g2"}
    assert dict(r.group_orgs) == {"g1": "o1", "g2": "o1"}
    assert r.subject.global_roles == frozenset()


def test_resolve_subject_groups_in_two_orgs_keep_roles_apart() -> None:
    facts = SubjectFacts(
        groups=(
            GroupFacts("g1", "o1", frozenset({"reader"})),
            GroupFacts("g2", "o2", frozenset({"writer"})),
            GroupFacts("g3", "o1", frozenset({"admin"})),
        ),
    )
    r = resolve_subject(user(), facts)
    assert r.member_orgs == {"o1", "o2"}
    assert dict(r.subject.organizations) == {"o1": {"reader", "admin"}, "o2": {"writer"}}


def test_resolve_subject_group_without_roles_counts_as_group_only() -> None:
    facts = SubjectFacts(groups=(GroupFacts("g1", "o1", project_ids=frozenset({"p1"})),))
    r = resolve_subject(user(), facts)
    assert r.member_orgs == {"o1"}
    assert r.subject.groups == {"g1"}
    assert dict(r.subject.organizations) == {}
    assert dict(r.subject.projects) == {}


def test_resolve_subject_project_links_grant_project_roles_of_every_linking_group() -> None:
    facts = SubjectFacts(
        groups=(
            GroupFacts("g1", "o1", frozenset({"reader"}), frozenset({"p1"})),
            GroupFacts("g2", "o1", frozenset({"writer"}), frozenset({"p1", "p2"})),
        ),
        project_orgs={"p1": "o1", "p2": "o1"},
    )
    r = resolve_subject(user(), facts)
    assert dict(r.subject.projects) == {
        "p1": ProjectMembership("o1", frozenset({"reader", "writer"})),
        "p2": ProjectMembership("o1", frozenset({"writer"})),
    }
    assert dict(r.projects_by_org) == {"o1": ("p1", "p2")}
    # project roles do not leak to organization level and vice versa
    assert dict(r.subject.organizations) == {"o1": {"reader", "writer"}}


def test_resolve_subject_foreign_or_dangling_project_link_grants_nothing() -> None:
    facts = SubjectFacts(
        groups=(
            GroupFacts("g1", "o1", frozenset({"reader"}), frozenset({"p2", "gone"})),
            GroupFacts("g2", "o2", frozenset({"writer"}), frozenset({"p2"})),
        ),
        project_orgs={"p2": "o2"},
    )
    r = resolve_subject(user(), facts)
    assert dict(r.subject.projects) == {"p2": ProjectMembership("o2", frozenset({"writer"}))}
    assert dict(r.projects_by_org) == {"o2": ("p2",)}


def test_resolve_subject_trusted_claim_limits_orgs_to_claimed_existing_ones() -> None:
    facts = SubjectFacts(
        groups=(
            GroupFacts("g1", "o1", frozenset({"reader"}), frozenset({"p1"})),
            GroupFacts("g2", "o2", frozenset({"writer"}), frozenset({"p2"})),
        ),
        project_orgs={"p1": "o1", "p2": "o2"},
        organizations=frozenset({"o1", "o2"}),
    )
    r = resolve_subject(user(frozenset({"o1", "o9"})), facts)
    assert r.member_orgs == {"o1"}
    assert r.subject.groups == {"g1"}
    assert dict(r.subject.organizations) == {"o1": {"reader"}}
    assert dict(r.subject.projects) == {"p1": ProjectMembership("o1", frozenset({"reader"}))}
    assert dict(r.group_orgs) == {"g1": "o1"}


def test_resolve_subject_global_roles_are_bindings_never_group_roles() -> None:
    facts = SubjectFacts(
        groups=(GroupFacts("g1", "o1", frozenset({"reader"})),),
        binding_role_ids=frozenset({"auditor"}),
    )
    r = resolve_subject(user(), facts)
    assert r.subject.global_roles == {"auditor"}
    assert r.subject.account_type is AccountType.USER
    assert (r.subject.issuer, r.subject.id) == (ISS, "alice")


def test_resolve_subject_scope_is_carried_to_the_subject() -> None:
    scope = TokenScope(frozenset({"*:read"}))
    assert resolve_subject(user(), SubjectFacts(), scope=scope).subject.scope is scope
    assert resolve_subject(user(), SubjectFacts()).subject.scope is None


# Service accounts ----------------------------------------------------------------------------


def test_resolve_subject_service_home_org_wins_over_groups_elsewhere() -> None:
    facts = SubjectFacts(
        groups=(
            GroupFacts("g1", "o1", frozenset({"reader"})),
            GroupFacts("g2", "o2", frozenset({"writer"})),
        ),
        home_organization_id="o1",
        organizations=frozenset({"o1", "o2"}),
    )
    r = resolve_subject(service(frozenset({"o2"})), facts)
    assert r.member_orgs == {"o1"}
    assert dict(r.subject.organizations) == {"o1": {"reader"}}
    assert r.subject.account_type is AccountType.SERVICE


def test_resolve_subject_service_claimed_org_is_not_widened() -> None:
    facts = SubjectFacts(
        groups=(
            GroupFacts("g1", "o1", frozenset({"reader"})),
            GroupFacts("g2", "o2", frozenset({"writer"})),
        ),
        organizations=frozenset({"o1", "o2"}),
    )
    r = resolve_subject(service(frozenset({"o2"})), facts)
    assert r.member_orgs == {"o2"}
    assert dict(r.subject.organizations) == {"o2": {"writer"}}
    # a claimed organization that does not exist gives no membership at all
    r = resolve_subject(service(frozenset({"o9"})), facts)
    assert r.member_orgs == frozenset()
    assert r.subject.groups == frozenset()


@pytest.mark.parametrize("claimed", [frozenset(), frozenset({"o1", "o2"})])
def test_resolve_subject_service_claiming_not_exactly_one_org_raises(
    claimed: frozenset[str],
) -> None:
    facts = SubjectFacts(organizations=frozenset({"o1", "o2"}))
    with pytest.raises(WrongOrganizationCount) as info:
        resolve_subject(service(claimed), facts, authz_claim=CLAIM)
    assert info.value.pointer == "/https:~1~1watchword.dev~1authz/orgIds"
    assert f"got {len(claimed)}" in str(info.value)


def test_resolve_subject_service_claim_error_without_claim_name_points_at_org_ids() -> None:
    with pytest.raises(WrongOrganizationCount) as info:
        resolve_subject(service(frozenset()), SubjectFacts())
    assert info.value.pointer == "//orgIds"


def test_resolve_subject_service_in_groups_of_one_org_belongs_to_it() -> None:
    facts = SubjectFacts(
        groups=(
            GroupFacts("g1", "o1", frozenset({"reader"})),
            GroupFacts("g2", "o1", frozenset({"writer"})),
        ),
    )
    r = resolve_subject(service(), facts)
    assert r.member_orgs == {"o1"}
    assert dict(r.subject.organizations) == {"o1": {"reader", "writer"}}


def test_resolve_subject_service_in_no_group_has_no_org() -> None:
    r = resolve_subject(service(), SubjectFacts())
    assert r.member_orgs == frozenset()


def test_resolve_subject_service_in_groups_of_two_orgs_raises() -> None:
    facts = SubjectFacts(
        groups=(GroupFacts("g1", "o1"), GroupFacts("g2", "o2")),
    )
    with pytest.raises(WrongOrganizationCount, match="2 organizations"):
        resolve_subject(service(), facts)


# System accounts -----------------------------------------------------------------------------


def test_resolve_subject_system_record_makes_a_global_only_system_account() -> None:
    identity = Identity(ISS, "ops", AccountType.USER, frozenset({"o1"}), frozenset({"idp-ops"}))
    facts = SubjectFacts(
        groups=(GroupFacts("g1", "o1", frozenset({"reader"}), frozenset({"p1"})),),
        project_orgs={"p1": "o1"},
        organizations=frozenset({"o1"}),
        binding_role_ids=frozenset({"auditor"}),
        system_role_ids=frozenset({"root"}),
    )
    r = resolve_subject(identity, facts)
    assert r.subject.account_type is AccountType.SYSTEM
    assert r.identity == Identity(ISS, "ops", AccountType.SYSTEM, None, frozenset({"idp-ops"}))
    assert r.member_orgs == frozenset()
    assert r.subject.global_roles == {"root", "auditor"}
    assert dict(r.subject.organizations) == {}
    assert dict(r.subject.projects) == {}
    assert r.subject.groups == frozenset()


def test_resolve_subject_system_claim_without_record_is_system_without_orgs() -> None:
    identity = Identity(ISS, "ops", AccountType.SYSTEM)
    facts = SubjectFacts(groups=(GroupFacts("g1", "o1", frozenset({"reader"})),))
    r = resolve_subject(identity, facts)
    assert r.identity is identity
    assert r.subject.account_type is AccountType.SYSTEM
    assert r.member_orgs == frozenset()
    assert r.subject.groups == frozenset()


# Against a reference resolver ----------------------------------------------------------------

ORGS = ("o1", "o2", "o3")
PROJECTS = ("p1", "p2", "p3", "p4")
ROLES = ("r1", "r2", "r3")


@dataclass(frozen=True)
class Expected:
    account_type: AccountType
    member_orgs: frozenset[str]
    organizations: dict[str, frozenset[str]]
    projects: dict[str, ProjectMembership]
    groups: frozenset[str]
    global_roles: frozenset[str]


def reference(identity: Identity, facts: SubjectFacts) -> Expected | None:
    """The rules of the module docstring, spelled out naively; ``None`` means it must raise."""
    if facts.system_role_ids is not None or identity.account_type is AccountType.SYSTEM:
        kind = AccountType.SYSTEM
        member: set[str] = set()
    elif identity.account_type is AccountType.SERVICE:
        kind = AccountType.SERVICE
        if facts.home_organization_id is not None:
            member = {facts.home_organization_id}
        elif identity.claimed_org_ids is not None:
            if len(identity.claimed_org_ids) != 1:
                return None
            member = {o for o in identity.claimed_org_ids if o in facts.organizations}
        else:
            member = {g.organization_id for g in facts.groups}
            if len(member) > 1:
                return None
    else:
        kind = AccountType.USER
        if identity.claimed_org_ids is not None:
            member = {o for o in identity.claimed_org_ids if o in facts.organizations}
        else:
            member = {g.organization_id for g in facts.groups}
    organizations: dict[str, frozenset[str]] = {}
    project_roles: dict[str, frozenset[str]] = {}
    groups = set()
    for g in facts.groups:
        if g.organization_id not in member:
            continue
        groups.add(g.id)
        org = g.organization_id
        organizations[org] = organizations.get(org, frozenset()) | g.role_ids
        for p in g.project_ids:
            if facts.project_orgs.get(p) == org:
                project_roles[p] = project_roles.get(p, frozenset()) | g.role_ids
    return Expected(
        account_type=kind,
        member_orgs=frozenset(member),
        organizations={o: r for o, r in organizations.items() if r},
        projects={
            p: ProjectMembership(facts.project_orgs[p], r) for p, r in project_roles.items() if r
        },
        groups=frozenset(groups),
        global_roles=facts.binding_role_ids | (facts.system_role_ids or frozenset()),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[Identity, SubjectFacts]:
    def subset(pool: tuple[str, ...]) -> st.SearchStrategy[frozenset[str]]:
        return st.frozensets(st.sampled_from(pool), max_size=3)

    n = draw(st.integers(0, 5))
    groups = tuple(
        GroupFacts(
            f"g{i}",
            draw(st.sampled_from(ORGS)),
            draw(subset(ROLES)),
            draw(subset((*PROJECTS, "gone"))),
        )
        for i in range(n)
    )
    project_orgs: Mapping[str, str] = draw(
        st.dictionaries(st.sampled_from(PROJECTS), st.sampled_from(ORGS))
    )
    facts = SubjectFacts(
        groups=groups,
        project_orgs=project_orgs,
        organizations=draw(subset(ORGS)),
        home_organization_id=draw(st.none() | st.sampled_from(ORGS)),
        binding_role_ids=draw(subset(("b1", "b2"))),
        system_role_ids=draw(st.none() | subset(("s1", "s2"))),
    )
    identity = Identity(
        ISS,
        "x",
        draw(st.sampled_from(AccountType)),
        draw(st.none() | st.frozensets(st.sampled_from((*ORGS, "o9")), max_size=2)),
    )
    return identity, facts


@settings(max_examples=400)
@given(cases())
def test_resolve_subject_random_facts_match_reference(case: tuple[Identity, SubjectFacts]) -> None:
    identity, facts = case
    expected = reference(identity, facts)
    if expected is None:
        with pytest.raises(WrongOrganizationCount):
            resolve_subject(identity, facts)
        return
    r = resolve_subject(identity, facts)
    s = r.subject
    assert s.account_type is expected.account_type
    assert r.identity.account_type is expected.account_type
    assert r.member_orgs == expected.member_orgs
    assert dict(s.organizations) == expected.organizations
    assert dict(s.projects) == expected.projects
    assert s.groups == expected.groups
    assert dict(r.group_orgs) == {g.id: g.organization_id for g in facts.groups if g.id in s.groups}
    assert s.global_roles == expected.global_roles
    by_org: dict[str, list[str]] = {}
    for p in sorted(expected.projects):
        by_org.setdefault(facts.project_orgs[p], []).append(p)
    assert dict(r.projects_by_org) == {o: tuple(ps) for o, ps in by_org.items()}
