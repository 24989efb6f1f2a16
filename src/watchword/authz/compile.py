"""Compile a subject once into lookup tables, so that a check is a handful of set look-ups.

Rules (the contract, also in ``docs/authz.md``):

- A *block* is a role's permissions at one level. A block's verdict for (type, action) is
  ``deny`` if any matching permission denies, else ``allow`` if any matching one allows,
  else abstain. Several roles at one level combine the same way (deny beats allow); the
  deciding role is the first by name among those with the winning effect.
- Global level: global blocks of the subject's global roles, for every object.
- Organization level: organization blocks of the roles held in ``object.org_id``.
- Project level: project blocks of the roles held in ``object.project_id``.
- Owner level, only when ``object.owner`` is the subject's key: owner blocks of the global
  roles, of the roles held in the object's organization and of those held in its project.
  Deny from any of the three beats allow from any of them.

Tables are built lazily per (type, action) on first use and then reused; building one
validates the type and action against the registry, so a miss raises
:class:`~watchword.errors.UnknownResourceType` / :class:`~watchword.errors.UnknownAction`.
A compiled subject belongs to the policy it was compiled against (``compiled.policy``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from watchword.authz.model import (
    DecidedBy,
    Decision,
    Effect,
    Level,
    Permission,
    Policy,
    Role,
    Subject,
)

__all__ = ["CompiledSubject", "Table", "Vote", "block_vote", "compile_subject", "level_vote"]


@dataclass(frozen=True, slots=True)
class Vote:
    """A non-abstaining verdict: its effect and the role and permission that cast it."""

    effect: Effect
    role: str
    permission: Permission


def block_vote(
    policy: Policy, role: Role, level: Level, type_name: str, action: str
) -> Vote | None:
    """Verdict of one role's block at ``level`` for (type, action); ``None`` abstains."""
    memo_key = (role.name, level, type_name, action)
    memo = policy.verdicts
    if memo_key in memo:
        hit = memo[memo_key]
        return None if hit is None else Vote(hit[0], role.name, hit[1])
    found: tuple[Effect, Permission] | None = None
    for perm in role.block(level):
        if perm.matches(type_name, action):
            if perm.effect is Effect.DENY:
                found = (Effect.DENY, perm)
                break
            if found is None:
                found = (Effect.ALLOW, perm)
    memo[memo_key] = found
    return None if found is None else Vote(found[0], role.name, found[1])


def level_vote(
    policy: Policy, role_names: Iterable[str], level: Level, type_name: str, action: str
) -> Vote | None:
    """Combine the blocks of several roles at one level: deny beats allow; else abstain."""
    allow: Vote | None = None
    for name in sorted(role_names):
        vote = block_vote(policy, policy.role(name), level, type_name, action)
        if vote is None:
            continue
        if vote.effect is Effect.DENY:
            return vote
        if allow is None:
            allow = vote
    return allow


def _decision(vote: Vote, decided_by: DecidedBy) -> Decision:
    allowed = vote.effect is Effect.ALLOW
    return Decision(
        allowed=allowed,
        decided_by=decided_by,
        role=vote.role,
        permission=vote.permission,
        scope_allowed=True if allowed else None,
    )


def _decisions_by_key(
    policy: Policy,
    *,
    roles_by_key: Mapping[str, frozenset[str]],
    level: Level,
    type_name: str,
    action: str,
    decided_by: DecidedBy,
) -> dict[str, Decision]:
    # Many organizations share a role set; compute each distinct set once.
    by_roleset: dict[frozenset[str], Decision | None] = {}
    out: dict[str, Decision] = {}
    for key, names in roles_by_key.items():
        if names in by_roleset:
            decision = by_roleset[names]
        else:
            vote = level_vote(policy, names, level, type_name, action)
            decision = None if vote is None else _decision(vote, decided_by)
            by_roleset[names] = decision
        if decision is not None:
            out[key] = decision
    return out


@dataclass(frozen=True, slots=True)
class Table:
    """Everything a check of (type, action) needs, as prebuilt decisions keyed by field value.

    ``org``/``project`` hold the orgs/projects where that level decides (allow or deny);
    ``owner_*`` hold the owner-level votes from each source; the ``scope_*`` fields hold the
    token scope's answer (``scope_unrestricted`` when no id can be refused).
    """

    type_name: str
    action: str
    key: str
    global_decision: Decision | None
    org: Mapping[str, Decision]
    project: Mapping[str, Decision]
    owner_global: Decision | None
    owner_org: Mapping[str, Decision]
    owner_project: Mapping[str, Decision]
    owner_possible: bool
    groups: frozenset[str]
    nothing: Decision
    acl_user: Decision
    scope_unrestricted: bool
    scope_names_ok: bool
    scope_any_id: bool
    scope_ids: frozenset[str]


_NOTHING = Decision(allowed=False, decided_by=DecidedBy.NOTHING)


class CompiledSubject:
    """A subject resolved against one :class:`Policy`; tables are filled in on first use."""

    __slots__ = ("_tables", "key", "policy", "role_count", "subject")

    def __init__(self, policy: Policy, subject: Subject) -> None:
        # Resolve every role name now: an unknown one raises here, not at check time.
        for names in (
            subject.global_roles,
            *subject.org_roles.values(),
            *subject.project_roles.values(),
        ):
            for name in names:
                policy.role(name)
        self.policy = policy
        self.subject = subject
        self.key = subject.key
        self.role_count = subject.role_count()  # a span attribute; O(orgs) to compute
        self._tables: dict[tuple[str, str], Table] = {}

    def table(self, type_name: str, action: str) -> Table:
        table = self._tables.get((type_name, action))
        if table is None:
            table = self._build(type_name, action)
            self._tables[(type_name, action)] = table
        return table

    def _build(self, type_name: str, action: str) -> Table:
        policy = self.policy
        policy.registry.require_action(type_name, action)
        subject = self.subject
        gvote = level_vote(policy, subject.global_roles, Level.GLOBAL, type_name, action)
        owner_gvote = level_vote(policy, subject.global_roles, Level.OWNER, type_name, action)
        owner_org = _decisions_by_key(
            policy,
            roles_by_key=subject.org_roles,
            level=Level.OWNER,
            type_name=type_name,
            action=action,
            decided_by=DecidedBy.OWNER,
        )
        owner_project = _decisions_by_key(
            policy,
            roles_by_key=subject.project_roles,
            level=Level.OWNER,
            type_name=type_name,
            action=action,
            decided_by=DecidedBy.OWNER,
        )
        owner_global = None if owner_gvote is None else _decision(owner_gvote, DecidedBy.OWNER)
        scope = subject.scope
        if scope is None:
            names_ok, any_id, ids = True, True, frozenset[str]()
        else:
            names_ok = scope.allows_name(type_name, action)
            any_id = scope.allows_any_id(type_name)
            ids = scope.allowed_ids(type_name)
        return Table(
            type_name=type_name,
            action=action,
            key=self.key,
            global_decision=None if gvote is None else _decision(gvote, DecidedBy.GLOBAL),
            org=_decisions_by_key(
                policy,
                roles_by_key=subject.org_roles,
                level=Level.ORGANIZATION,
                type_name=type_name,
                action=action,
                decided_by=DecidedBy.ORGANIZATION,
            ),
            project=_decisions_by_key(
                policy,
                roles_by_key=subject.project_roles,
                level=Level.PROJECT,
                type_name=type_name,
                action=action,
                decided_by=DecidedBy.PROJECT,
            ),
            owner_global=owner_global,
            owner_org=owner_org,
            owner_project=owner_project,
            owner_possible=bool(owner_global or owner_org or owner_project),
            groups=subject.groups,
            nothing=_NOTHING,
            acl_user=Decision(
                allowed=True,
                decided_by=DecidedBy.ACL,
                acl_entry=f"user:{self.key}",
                scope_allowed=True,
            ),
            scope_unrestricted=names_ok and any_id,
            scope_names_ok=names_ok,
            scope_any_id=any_id,
            scope_ids=ids,
        )


def compile_subject(policy: Policy, subject: Subject) -> CompiledSubject:
    """Resolve ``subject``'s roles against ``policy`` (raises on an unknown role)."""
    return CompiledSubject(policy, subject)
