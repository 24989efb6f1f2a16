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

Nothing is computed ahead: a table per (type, action) is built on the first check of it
(validating the type and action against the registry, so a miss raises
:class:`~watchword.errors.UnknownResourceType` / :class:`~watchword.errors.UnknownAction`),
and within a table each organization's or project's decision on the first check that
touches it (memoized per role set). Compiling is O(1) and a check touches only what its
object names, however many organizations the subject is in. A compiled subject belongs to
the policy it was compiled against (``compiled.policy``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from watchword.authz.model import (
    DecidedBy,
    Decision,
    Effect,
    Level,
    Permission,
    Policy,
    ProjectMembership,
    Role,
    Subject,
)
from watchword.errors import WatchwordError

__all__ = [
    "FOREIGN_KEYS",
    "MISS",
    "CompiledSubject",
    "LevelDecisions",
    "LevelKind",
    "ProjectRoles",
    "Table",
    "Vote",
    "block_vote",
    "compile_subject",
    "level_vote",
    "roleset_decision",
]


MISS: Final[Any] = object()
"""What ``Policy.decisions.get(key, MISS)`` answers for a role set not decided yet."""


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


DECISION_MEMO: Final = 65_536
"""Role-set decisions a policy remembers (past it, they are decided each time)."""

MEMO_ROLES: Final = 32
"""Only role sets of at most this many names are remembered (a document can name many)."""


@dataclass(frozen=True, slots=True)
class LevelKind:
    """One level a role set is decided at, and what a decision there is decided by;
    ``code`` keys the policy's memo (strings hash once, enums per call)."""

    level: Level
    decided_by: DecidedBy
    code: str


GLOBAL: Final = LevelKind(Level.GLOBAL, DecidedBy.GLOBAL, "g")
ORGANIZATION: Final = LevelKind(Level.ORGANIZATION, DecidedBy.ORGANIZATION, "o")
PROJECT: Final = LevelKind(Level.PROJECT, DecidedBy.PROJECT, "p")
OWNER: Final = LevelKind(Level.OWNER, DecidedBy.OWNER, "w")


def roleset_decision(
    policy: Policy, names: frozenset[str], kind: LevelKind, type_name: str, action: str
) -> Decision | None:
    """The decision of the roles ``names`` held at ``kind``'s level (``None``: they
    abstain), remembered by the policy: subjects share role sets, so a new subject's first
    check in an organization usually finds its answer made."""
    memo = policy.decisions
    key = (names, kind.code, type_name, action)
    hit = memo.get(key, MISS)
    if hit is not MISS:
        return hit  # type: ignore[return-value]
    for name in names:  # every name, not only those read before a deny decides
        policy.role(name)
    vote = level_vote(policy, names, kind.level, type_name, action)
    decision = None if vote is None else _decision(vote, kind.decided_by)
    if len(memo) < DECISION_MEMO and len(names) <= MEMO_ROLES:
        memo[key] = decision
    return decision


class LevelDecisions:
    """The decisions of one level (organization, project, or the owner level of either) for
    one (type, action), keyed by organization or project id, computed on first use.

    What a check reads, all plain (C-speed) containers:

    - :attr:`decisions`: key → the decision, for the keys where the level decides;
    - :attr:`seen`: keys already looked up where it abstains (memberships whose roles say
      nothing here, and other organizations' or projects' ids: at most
      :data:`FOREIGN_KEYS` of those, so objects from elsewhere cannot grow it);
    - :attr:`open`: whether a key in neither may still be one of the subject's
      memberships, not decided yet (then :meth:`lookup` decides it).

    So a check is ``decisions.get(key)``, and only where that is ``None`` and the level is
    open, ``key in seen`` (:meth:`value`). Once more foreign keys have been looked up than
    the subject has memberships (a long-lived subject asked about many objects), the level
    decides every membership at once (:meth:`complete`: that many decisions, already paid
    for by the foreign look-ups) and closes: a key outside :attr:`decisions` then abstains,
    one ``dict`` miss, as cheap as when subjects were compiled eagerly
    (``benchmarks/authz/warm.md``). A role the policy lacks keeps the level open (the check
    that needs it raises, not an unrelated one). Role sets are decided by
    :func:`roleset_decision`; :meth:`decided` walks every membership (what
    :func:`~.evaluate.prepare` needs).
    """

    __slots__ = (
        "budget", "decisions", "foreign", "kind", "open", "roles", "seen", "slot", "table"
    )  # fmt: skip

    def __init__(
        self,
        table: Table,
        roles: Mapping[str, frozenset[str]],
        kind: LevelKind,
        slot: str | None = None,
    ) -> None:
        self.table = table
        self.roles = roles
        self.kind = kind
        self.slot = slot  # which flag of the table says it is open: "levels" or "owner"
        self.foreign = 0
        # Reads while open before deciding everything: a level read this often is long-lived
        # (COMPLETE_AFTER reads per membership pay for its completion many times over).
        self.budget = COMPLETE_AFTER * (len(roles) + 8)
        self.open = True
        self.decisions: dict[str | None, Decision] = {}
        self.seen: set[str | None] = set()

    def value(self, key: str | None) -> Decision | None:
        """The level's decision at ``key`` (``None``: it abstains)."""
        if self.open:
            self.budget -= 1
            if self.budget < 0:
                self.complete()
        decision = self.decisions.get(key)
        if decision is None and self.open and key not in self.seen:
            decision = self.lookup(key)
        return decision

    def lookup(self, key: str | None) -> Decision | None:
        """Decide ``key`` (not looked up yet) and remember the answer."""
        names = self.roles.get(key) if key is not None else None
        if names is None:
            if len(self.seen) < FOREIGN_KEYS and (key is None or len(key) <= FOREIGN_KEY_CHARS):
                self.seen.add(key)
            self.foreign += 1
            if self.foreign > len(self.roles):
                self.complete()
            return None
        t = self.table
        decision = roleset_decision(t.policy, names, self.kind, t.type_name, t.action)
        if decision is None:
            self.seen.add(key)
        else:
            self.decisions[key] = decision
        return decision

    def complete(self) -> None:
        """Decide every membership now and close the level (see above)."""
        try:
            decided = [(key, self._for(names)) for key, names in self.roles.items()]
        except WatchwordError:
            # Stay open: the check that needs the bad role raises, not an unrelated one.
            self.foreign = -(2**62)
            self.budget = 2**62
            return
        # In place: the table holds these very containers.
        self.decisions.update((key, d) for key, d in decided if d is not None)
        self.seen.clear()
        self.open = False
        t = self.table
        if self.slot == "levels":
            t.open = t.org_level.open or t.project_level.open
            if not t.open and t._owner_levels is not None:
                for level in t._owner_levels:  # as long-lived: decide those too
                    if level.open:
                        level.complete()
        elif self.slot == "owner":
            org, project = t.owner_levels()
            t.owner_open = org.open or project.open

    def _for(self, names: frozenset[str]) -> Decision | None:
        t = self.table
        return roleset_decision(t.policy, names, self.kind, t.type_name, t.action)

    def decided(self) -> Iterator[tuple[str, Decision]]:
        """Every membership where the level decides, with its decision (all of them)."""
        for key, names in self.roles.items():
            decision = self._for(names)
            if decision is not None:
                yield key, decision


class ProjectRoles(Mapping[str, frozenset[str]]):
    """Project id → the role names held there: a view of ``subject.projects`` (O(1) to
    make; each read takes the entry's ``roles``), what the project levels look up."""

    __slots__ = ("_projects",)

    def __init__(self, projects: Mapping[str, ProjectMembership]) -> None:
        self._projects = projects

    def get(self, key: str, default: object = None) -> frozenset[str] | None:  # type: ignore[override]
        membership = self._projects.get(key)
        return default if membership is None else membership.roles  # type: ignore[return-value]

    def __getitem__(self, key: str) -> frozenset[str]:
        return self._projects[key].roles

    def __contains__(self, key: object) -> bool:
        return key in self._projects

    def __iter__(self) -> Iterator[str]:
        return iter(self._projects)

    def __len__(self) -> int:
        return len(self._projects)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._projects)} projects)"


COMPLETE_AFTER: Final = 4
"""A level is completed after this many reads per membership (or more foreign keys than
memberships), whichever comes first (see :class:`LevelDecisions`)."""

FOREIGN_KEYS: Final = 4096
"""At most this many keys outside the subject's memberships are remembered per level..."""

FOREIGN_KEY_CHARS: Final = 128
"""... each of at most this many characters (the ids come from the objects asked about)."""


class Table:
    """Everything a check of (type, action) needs: the global votes, the level decisions
    (filled per organization or project as checks need them), groups, the token scope.

    ``scope_*``: the token scope's answer (``scope_unrestricted`` when no id can be refused).
    """

    __slots__ = (
        "_acl_user",
        "_owner_levels",
        "action",
        "global_decision",
        "groups",
        "key",
        "nothing",
        "open",
        "org",
        "org_level",
        "owner_global",
        "owner_open",
        "owner_org_decisions",
        "owner_project_decisions",
        "policy",
        "project",
        "project_level",
        "scope_any_id",
        "scope_ids",
        "scope_names_ok",
        "scope_unrestricted",
        "subject",
        "type_name",
    )

    def __init__(self, compiled: CompiledSubject, type_name: str, action: str) -> None:
        policy = compiled.policy
        policy.registry.require_action(type_name, action)
        subject = compiled.subject
        self.type_name = type_name
        self.action = action
        self.key = compiled.key
        self.subject = subject
        self.policy = policy
        global_roles = subject.global_roles
        if global_roles:
            self.global_decision = roleset_decision(policy, global_roles, GLOBAL, type_name, action)
            self.owner_global = roleset_decision(policy, global_roles, OWNER, type_name, action)
        else:
            self.global_decision = self.owner_global = None
        self.org_level = LevelDecisions(self, subject.organizations, ORGANIZATION, "levels")
        self.project_level = LevelDecisions(self, ProjectRoles(subject.projects), PROJECT, "levels")
        self.org = self.org_level.decisions
        self.project = self.project_level.decisions
        self.open = True
        self._owner_levels: tuple[LevelDecisions, LevelDecisions] | None = None
        self.owner_open = True  # the owner levels are made, open, on first use
        self._acl_user: Decision | None = None
        self.groups = subject.groups
        self.nothing = _NOTHING
        scope = subject.scope
        if scope is None:
            names_ok, any_id, ids = True, True, frozenset[str]()
        else:
            names_ok = scope.allows_name(type_name, action)
            any_id = scope.allows_any_id(type_name)
            ids = scope.allowed_ids(type_name)
        self.scope_unrestricted = names_ok and any_id
        self.scope_names_ok = names_ok
        self.scope_any_id = any_id
        self.scope_ids = ids

    def owner_levels(self) -> tuple[LevelDecisions, LevelDecisions]:
        """The owner level's decisions by organization and by project (made on the first
        check of an object the subject owns)."""
        levels = self._owner_levels
        if levels is None:
            levels = self._owner_levels = (
                LevelDecisions(self, self.subject.organizations, OWNER, "owner"),
                LevelDecisions(self, self.project_level.roles, OWNER, "owner"),
            )
            self.owner_org_decisions = levels[0].decisions
            self.owner_project_decisions = levels[1].decisions
            if not self.open:  # a long-lived table: decide them all now
                for level in levels:
                    level.complete()
        return levels

    @property
    def owner_org(self) -> LevelDecisions:
        return self.owner_levels()[0]

    @property
    def owner_project(self) -> LevelDecisions:
        return self.owner_levels()[1]

    @property
    def acl_user(self) -> Decision:
        """The decision of the subject's own entry in an object's user ACL."""
        decision = self._acl_user
        if decision is None:
            decision = self._acl_user = Decision(
                allowed=True,
                decided_by=DecidedBy.ACL,
                acl_entry=f"user:{self.key}",
                scope_allowed=True,
            )
        return decision


_NOTHING = Decision(allowed=False, decided_by=DecidedBy.NOTHING)


class CompiledSubject:
    """A subject bound to one :class:`Policy`. Compiling is O(1): a table per (type, action)
    is made on the first check that needs it, and it decides an organization or project
    the first time a check touches it (see :class:`LevelDecisions`), so a check costs the
    same whether the subject is in one organization or thousands.

    A role name the policy does not define raises :class:`~watchword.errors.UnknownRole`
    when a check, explain or prepare first needs it; :meth:`validate` checks them all at
    once, and :meth:`warm` builds the tables of the given questions ahead of the first check.
    """

    __slots__ = ("_tables", "key", "policy", "subject")

    def __init__(self, policy: Policy, subject: Subject) -> None:
        self.policy = policy
        self.subject = subject
        self.key = subject.key
        self._tables: dict[tuple[str, str], Table] = {}

    @property
    def role_count(self) -> int:
        """Role names held, counted per organization and project (walks every membership)."""
        return self.subject.role_count()

    def table(self, type_name: str, action: str) -> Table:
        table = self._tables.get((type_name, action))
        if table is None:
            table = Table(self, type_name, action)
            self._tables[(type_name, action)] = table
        return table

    def validate(self) -> CompiledSubject:
        """Resolve every role name the subject holds (walks every membership);
        :class:`~watchword.errors.UnknownRole` for the first one the policy lacks."""
        subject = self.subject
        seen: set[frozenset[str]] = set()
        for names in (
            subject.global_roles,
            *subject.organizations.values(),
            *(membership.roles for membership in subject.projects.values()),
        ):
            if names not in seen:
                seen.add(names)
                for name in names:
                    self.policy.role(name)
        return self

    def warm(self, questions: Iterable[tuple[str, str]] = ()) -> CompiledSubject:
        """Validate every role name and decide every membership for each (type, action) of
        ``questions`` now, so the first checks find everything ready."""
        self.validate()
        for type_name, action in questions:
            table = self.table(type_name, action)
            levels = (table.org_level, table.project_level, *table.owner_levels())
            for level in levels:
                level.complete()
        return self


def compile_subject(policy: Policy, subject: Subject) -> CompiledSubject:
    """Bind ``subject`` to ``policy`` (O(1); see :class:`CompiledSubject`)."""
    return CompiledSubject(policy, subject)
