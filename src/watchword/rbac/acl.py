"""The ACL document: what a subject may do, by level, from its compiled subject.

Pure. The document is a superset of uni-identity's (``docs/rbac.md`` has the shape):
``global`` endpoints, ``organizations[]`` each with ``endpoints``, ``owner`` and
``projects[]``, plus for a scoped request ``organization`` and ``projects``.

Rules (the document agrees with :func:`watchword.authz.evaluate.check`):

- It is computed from the same :class:`~watchword.authz.compile.CompiledSubject` that checks
  use; a client reads it as a fall-through, like uni-identity's: an operation is allowed
  on an object in organization O and project P when it is listed in ``global``, or in O's
  ``endpoints``, or in P's ``endpoints``. For every (type, action, O, P) that answer equals
  ``check`` on an object with that org and project and no owner or object ACL.
- Each level lists only what that level *decides* as allowed: a deny at a level removes the
  operation there and at every level below, an allow above makes the lower levels silent.
  Effective allows only: no deny is ever listed.
- ``owner`` lists what the subject may do on objects it owns in that organization (when no
  higher level decided).
- The token scope intersects everything: an operation is listed only when the scope's names
  allow it and its allow-list admits any id of the type (an allow-list of specific ids is
  reported in ``scope`` for the client to apply).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from watchword.authz.compile import CompiledSubject, block_vote, level_vote
from watchword.authz.model import Effect, Level, Policy
from watchword.errors import NotAMember
from watchword.rbac.subject import Resolution

__all__ = [
    "AclDocument",
    "Endpoint",
    "OrganizationAcl",
    "ProjectAcl",
    "acl_document",
    "endpoints_to_dict",
]

Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Operations allowed on one resource type (``name``)."""

    name: str
    operations: tuple[str, ...]


Endpoints = tuple[Endpoint, ...]


# (project id, endpoints). A plain tuple, not a dataclass: a large subject's document has
# one per project (a thousand in the benchmark) and tuples are several times cheaper to build.
ProjectAcl = tuple[str, Endpoints]


@dataclass(frozen=True, slots=True)
class OrganizationAcl:
    id: str
    endpoints: Endpoints
    owner: Endpoints
    projects: tuple[ProjectAcl, ...]


@dataclass(frozen=True, slots=True)
class AclDocument:
    issuer: str
    subject_id: str
    account_type: str
    global_endpoints: Endpoints
    organizations: tuple[OrganizationAcl, ...]
    organization: OrganizationAcl | None
    groups: tuple[tuple[str, str], ...]  # (group id, organization id)
    scope: Mapping[str, object] | None

    def to_dict(self) -> dict[str, object]:
        """The wire shape (camelCase keys, as in uni-identity).

        Identical endpoint lists are one shared list object (the document is read-only).
        """
        shared: dict[int, list[dict[str, object]]] = {}

        def eps(endpoints: Endpoints) -> list[dict[str, object]]:
            # Endpoints tuples come from per-role-set memos, so equal ones are one object.
            out = shared.get(id(endpoints))
            if out is None:
                out = shared[id(endpoints)] = endpoints_to_dict(endpoints)
            return out

        def org_dict(org: OrganizationAcl) -> dict[str, object]:
            return {
                "id": org.id,
                "endpoints": eps(org.endpoints),
                "owner": eps(org.owner),
                "projects": [{"id": p, "endpoints": eps(e)} for p, e in org.projects],
            }

        orgs = [org_dict(o) for o in self.organizations]
        scoped = None
        if self.organization is not None:
            scoped = next(d for d in orgs if d["id"] == self.organization.id)
        return {
            "subject": {"id": self.subject_id, "issuer": self.issuer, "type": self.account_type},
            "global": eps(self.global_endpoints),
            "organizations": orgs,
            "organization": scoped,
            "projects": [] if scoped is None else scoped["projects"],
            "groups": [{"id": g, "organizationId": o} for g, o in self.groups],
            "scope": self.scope,
        }


def endpoints_to_dict(endpoints: Endpoints) -> list[dict[str, object]]:
    return [{"name": e.name, "operations": list(e.operations)} for e in endpoints]


def _group(pairs: Iterable[Pair]) -> Endpoints:
    by_type: dict[str, list[str]] = {}
    for type_name, action in pairs:
        by_type.setdefault(type_name, []).append(action)
    return tuple(Endpoint(t, tuple(actions)) for t, actions in by_type.items())


class _Levels:
    """Per role set memo of what a level decides, over the pairs the higher levels left open."""

    __slots__ = ("_memo", "level", "policy")

    def __init__(self, policy: Policy, level: Level) -> None:
        self.policy = policy
        self.level = level
        self._memo: dict[tuple[frozenset[str], object], tuple[Endpoints, tuple[Pair, ...]]] = {}

    def decide(
        self,
        roles: frozenset[str],
        open_pairs: tuple[Pair, ...],
        above: frozenset[str] | None = None,
    ) -> tuple[Endpoints, tuple[Pair, ...]]:
        """(allowed endpoints, pairs still undecided) for ``roles`` at this level.

        ``above`` is the role set whose level left ``open_pairs`` open (they are a function
        of it), so the memo key hashes frozensets (cached hashes) instead of the pairs.
        """
        key: tuple[frozenset[str], object] = (roles, above if above is not None else open_pairs)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        allowed: list[Pair] = []
        still_open: list[Pair] = []
        policy, level = self.policy, self.level
        # The same combination as authz's level_vote (deny beats allow, else abstain), with
        # the roles resolved once per set instead of once per (type, action).
        held = [policy.role(name) for name in sorted(roles)]
        for pair in open_pairs:
            effect: Effect | None = None
            for role in held:
                vote = block_vote(policy, role, level, pair[0], pair[1])
                if vote is not None:
                    effect = vote.effect
                    if effect is Effect.DENY:
                        break
            if effect is None:
                still_open.append(pair)
            elif effect is Effect.ALLOW:
                allowed.append(pair)
        result = (_group(allowed), tuple(still_open))
        self._memo[key] = result
        return result


def _owner(
    policy: Policy,
    global_roles: frozenset[str],
    organization_roles: frozenset[str],
    open_pairs: tuple[Pair, ...],
) -> Endpoints:
    allowed: list[Pair] = []
    for type_name, action in open_pairs:
        votes = [
            level_vote(policy, roles, Level.OWNER, type_name, action)
            for roles in (global_roles, organization_roles)
            if roles
        ]
        effects = {v.effect for v in votes if v is not None}
        if Effect.ALLOW in effects and Effect.DENY not in effects:
            allowed.append((type_name, action))
    return _group(allowed)


def _scoped_pairs(compiled: CompiledSubject) -> tuple[Pair, ...]:
    registry = compiled.policy.registry
    scope = compiled.subject.scope
    pairs: list[Pair] = []
    for type_name in sorted(registry.types):
        if scope is not None and not scope.allows_any_id(type_name):
            continue
        for action in sorted(registry.types[type_name].actions):
            if scope is None or scope.allows_name(type_name, action):
                pairs.append((type_name, action))
    return tuple(pairs)


def acl_document(
    compiled: CompiledSubject, resolution: Resolution, *, organization_id: str | None = None
) -> AclDocument:
    """The ACL of ``resolution``'s subject; scoped to ``organization_id`` when given.

    A scoped request for an organization the subject is not a member of raises
    :class:`~watchword.errors.NotAMember`, for users and service accounts alike.
    """
    if organization_id is not None and organization_id not in resolution.member_orgs:
        raise NotAMember(f"the subject is not a member of organization {organization_id!r}")
    policy = compiled.policy
    subject = compiled.subject
    pairs = _scoped_pairs(compiled)
    global_endpoints, open_pairs = _Levels(policy, Level.GLOBAL).decide(subject.global_roles, pairs)
    org_level = _Levels(policy, Level.ORGANIZATION)
    project_level = _Levels(policy, Level.PROJECT)
    owner_memo: dict[frozenset[str], Endpoints] = {}  # org_open is a function of roles
    # org role set -> project role set -> endpoints (nested: no key tuple per project)
    project_memo: dict[frozenset[str], dict[frozenset[str], Endpoints]] = {}
    empty: frozenset[str] = frozenset()
    organizations: list[OrganizationAcl] = []
    scoped: OrganizationAcl | None = None
    for org in sorted(resolution.member_orgs):
        roles = subject.organizations.get(org, empty)
        org_endpoints, org_open = org_level.decide(roles, open_pairs, subject.global_roles)
        owner = owner_memo.get(roles)
        if owner is None:
            owner = owner_memo[roles] = _owner(policy, subject.global_roles, roles, org_open)
        projects: list[ProjectAcl] = []
        by_project_set = project_memo.get(roles)
        if by_project_set is None:
            by_project_set = project_memo[roles] = {}
        for p in resolution.projects_by_org.get(org, ()):
            project_set = subject.projects[p].roles
            hit = by_project_set.get(project_set)
            if hit is None:
                hit = project_level.decide(project_set, org_open, roles)[0]
                by_project_set[project_set] = hit
            projects.append((p, hit))
        entry = OrganizationAcl(org, org_endpoints, owner, tuple(projects))
        organizations.append(entry)
        if org == organization_id:
            scoped = entry
    scope = subject.scope
    return AclDocument(
        issuer=subject.issuer,
        subject_id=subject.id,
        account_type=subject.account_type.value,
        global_endpoints=global_endpoints,
        organizations=tuple(organizations),
        organization=scoped,
        groups=tuple(sorted(resolution.group_orgs.items())),
        scope=None
        if scope is None
        else {
            "names": sorted(scope.names),
            "allowList": [{"type": t, "id": i} for t, i in sorted(scope.allow_list)],
        },
    )
