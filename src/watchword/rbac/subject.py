"""Building the authz :class:`~watchword.authz.model.Subject` from an identity and facts.

Pure. Storage (``watchword.rbac.store.facts``) or the legacy resolver gathers
:class:`SubjectFacts` for one identity; :func:`resolve_subject` turns them into the one
compiled-ready subject that checks, filters and the ACL document all use.

Rules:

- Organization membership (``member_orgs``):

  - *system* accounts belong to no organization; they hold global roles only (their system
    account record's roles, plus role bindings).
  - *service* accounts belong to exactly one organization: a local service account's own
    (its record), else the one ``orgIds`` entry of a trusted claim, else the one
    organization whose groups hold it. Zero is allowed (no access); two or more raise
    :class:`~watchword.rbac.errors.WrongOrganizationCount`, never a silent pick.
  - *users*: the claimed ``orgIds`` when the issuer is trusted for them (and the
    organization exists), else the organizations of the groups that hold them.

- Groups count only in member organizations. A group's roles apply at organization level
  in its organization, and at project level in each project linked to it.
- Role bindings (global grants) and system account roles are global roles; group roles
  never are (their global blocks are not consulted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from watchword.authz.model import AccountType, ProjectMembership, Subject, TokenScope
from watchword.rbac.claims import Identity, json_pointer
from watchword.rbac.errors import WrongOrganizationCount

__all__ = ["GroupFacts", "Resolution", "SubjectFacts", "resolve_subject"]


@dataclass(frozen=True, slots=True)
class GroupFacts:
    """A group that holds the subject (as a member or through a mapped IdP group)."""

    id: str
    organization_id: str
    role_ids: frozenset[str] = frozenset()
    project_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class SubjectFacts:
    """What storage knows about one identity, gathered before resolution.

    ``organizations`` holds the ids, among those the resolution may look at (claimed ones,
    the groups' ones, the home one), that exist. ``project_orgs`` maps every project linked
    from ``groups`` to its organization.
    """

    groups: tuple[GroupFacts, ...] = ()
    project_orgs: Mapping[str, str] = field(default_factory=dict)
    organizations: frozenset[str] = frozenset()
    home_organization_id: str | None = None
    binding_role_ids: frozenset[str] = frozenset()
    system_role_ids: frozenset[str] | None = None  # None: no system account record

    @property
    def is_system_account(self) -> bool:
        return self.system_role_ids is not None


@dataclass(frozen=True, slots=True)
class Resolution:
    """The subject plus what the ACL document lists: member orgs, their projects, groups."""

    identity: Identity
    subject: Subject
    member_orgs: frozenset[str]
    projects_by_org: Mapping[str, tuple[str, ...]]
    group_orgs: Mapping[str, str]


def _service_org(identity: Identity, facts: SubjectFacts, authz_claim: str) -> frozenset[str]:
    if facts.home_organization_id is not None:
        return frozenset({facts.home_organization_id})
    if identity.claimed_org_ids is not None:
        if len(identity.claimed_org_ids) != 1:
            raise WrongOrganizationCount(
                f"a service account must claim exactly one organization, "
                f"got {len(identity.claimed_org_ids)}",
                pointer=json_pointer(authz_claim, "orgIds"),
            )
        return identity.claimed_org_ids & facts.organizations
    orgs = frozenset(g.organization_id for g in facts.groups)
    if len(orgs) > 1:
        raise WrongOrganizationCount(
            f"service account {identity.id!r} of {identity.issuer!r} is in groups of "
            f"{len(orgs)} organizations; it may belong to exactly one"
        )
    return orgs


def _member_orgs(identity: Identity, facts: SubjectFacts, authz_claim: str) -> frozenset[str]:
    match identity.account_type:
        case AccountType.SYSTEM:
            return frozenset()
        case AccountType.SERVICE:
            return _service_org(identity, facts, authz_claim)
        case AccountType.USER:
            if identity.claimed_org_ids is not None:
                return identity.claimed_org_ids & facts.organizations
            return frozenset(g.organization_id for g in facts.groups)


def resolve_subject(
    identity: Identity,
    facts: SubjectFacts,
    *,
    scope: TokenScope | None = None,
    authz_claim: str = "",
) -> Resolution:
    """The authz subject of ``identity`` given ``facts`` (see the module rules)."""
    account_type = AccountType.SYSTEM if facts.is_system_account else identity.account_type
    if account_type is not identity.account_type:
        identity = Identity(identity.issuer, identity.id, account_type, None, identity.idp_groups)
    member_orgs = _member_orgs(identity, facts, authz_claim)
    # Collect role sets, then union them per org/project in C (frozenset.union); the
    # groups of a large subject share a handful of role sets, so results are interned and
    # the engine's and the ACL document's per-set memos hit.
    org_sets: dict[str, list[frozenset[str]]] = {}
    project_sets: dict[str, list[frozenset[str]]] = {}
    group_orgs: dict[str, str] = {}
    project_orgs = facts.project_orgs
    if member_orgs:
        # The hot loop of a large subject (one turn per group): locals only, and no
        # setdefault (it would allocate a throw-away list on every turn).
        project_org = project_orgs.get
        for group in facts.groups:
            org = group.organization_id
            if org not in member_orgs:
                continue
            group_orgs[group.id] = org
            role_ids = group.role_ids
            if role_ids:
                held = org_sets.get(org)
                if held is None:
                    org_sets[org] = [role_ids]
                else:
                    held.append(role_ids)
                for project in group.project_ids:
                    # A dangling or foreign link grants nothing.
                    if project_org(project) == org:
                        held = project_sets.get(project)
                        if held is None:
                            project_sets[project] = [role_ids]
                        else:
                            held.append(role_ids)
    interned: dict[frozenset[str], frozenset[str]] = {}
    unions: dict[tuple[frozenset[str], ...], frozenset[str]] = {}

    def union(sets: list[frozenset[str]]) -> frozenset[str]:
        # Keyed on the tuple of sets: frozensets cache their hash, so this is cheap, and
        # projects linked from the same groups' role sets share one result.
        key = tuple(sets)
        merged = unions.get(key)
        if merged is None:
            merged = sets[0] if len(sets) == 1 else frozenset().union(*sets)
            merged = unions[key] = interned.setdefault(merged, merged)
        return merged

    organizations = {o: union(sets) for o, sets in org_sets.items()}
    # One membership per (organization, role set): projects share them as they share sets.
    memberships: dict[tuple[str, frozenset[str]], ProjectMembership] = {}
    projects: dict[str, ProjectMembership] = {}
    for project, sets in project_sets.items():
        pair = (project_orgs[project], union(sets))
        membership = memberships.get(pair)
        if membership is None:
            membership = memberships[pair] = ProjectMembership(*pair)
        projects[project] = membership
    projects_by_org: dict[str, list[str]] = {}
    for project in sorted(projects):
        projects_by_org.setdefault(project_orgs[project], []).append(project)
    global_roles = facts.binding_role_ids | (facts.system_role_ids or frozenset())
    subject = Subject(
        issuer=identity.issuer,
        id=identity.id,
        account_type=account_type,
        global_roles=global_roles,
        organizations=MappingProxyType(organizations),
        projects=MappingProxyType(projects),
        groups=frozenset(group_orgs),
        scope=scope,
    )
    return Resolution(
        identity=identity,
        subject=subject,
        member_orgs=member_orgs,
        projects_by_org=MappingProxyType({o: tuple(p) for o, p in projects_by_org.items()}),
        group_orgs=MappingProxyType(group_orgs),
    )
