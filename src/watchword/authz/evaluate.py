"""Check one object, or prepare a residual predicate for every object of one type.

Rules (the walk; see :mod:`.compile` for how each level votes):

- Walk global → organization → project → owner → ACL; the first stage that does not
  abstain decides. The ACL stage allows when the object's user ACL has the subject's key,
  or its group ACL one of the subject's groups, with the action or ``*``; it never denies.
  Nothing decides → deny.
- Effective = that AND the token scope: its names allow ``type:action`` and its allow-list
  holds (type, id). No scope restricts nothing.
- ``check``, ``Prepared.matches`` and the SQL of ``Prepared.to_sql`` agree on every object;
  the test suite proves it against an independent reference evaluator.

The residual of :func:`prepare` encodes the same walk (sets as leaves, so its size does not
depend on how many organizations the subject is in)::

    org_id IN A_org
    OR (NOT org_id IN D_org AND (project_id IN A_prj
        OR (NOT project_id IN D_prj AND (owner-allows OR (NOT owner-denies AND acl)))))
    AND scope
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from watchword.authz.compile import CompiledSubject, Table
from watchword.authz.model import WILDCARD, DecidedBy, Decision, Object
from watchword.authz.residual import (
    FALSE,
    TRUE,
    AclKind,
    Field,
    Node,
    acl_has,
    all_of,
    any_of,
    compile_filter,
    compile_predicate,
    equals,
    is_in,
    negate,
    node_count,
    residual_to_dict,
)
from watchword.errors import InvalidInput

if TYPE_CHECKING:
    from watchword.authz.sql import ColumnMapping, SqlCondition

__all__ = ["FILTER_PREPARE_THRESHOLD", "Prepared", "check", "filter_objects", "prepare"]

# Below this many objects, checking one by one is cheaper than preparing. Seed 004 measured
# 10 for Rego; here a prepare plus its generated filter costs 100-350 µs against ~0.2-0.4 µs
# per check, and benchmarks/authz/crossover.md puts the crossover near 1,000 objects.
FILTER_PREPARE_THRESHOLD = 1000


def _owner(t: Table, obj: Object) -> Decision | None:
    if t.owner_open:
        owner_org, owner_project = t.owner_levels()
        org, project = owner_org.value(obj.org_id), owner_project.value(obj.project_id)
    else:  # every membership decided (see LevelDecisions)
        org = t.owner_org_decisions.get(obj.org_id)
        project = t.owner_project_decisions.get(obj.project_id)
    votes = (t.owner_global, org, project)
    for vote in votes:
        if vote is not None and not vote.allowed:
            return vote
    for vote in votes:
        if vote is not None:
            return vote
    return None


def _acl(t: Table, obj: Object, action: str) -> Decision:
    users = obj.acl_users
    if users:
        actions = users.get(t.key)
        if actions is not None and (action in actions or WILDCARD in actions):
            return t.acl_user
    groups = obj.acl_groups
    if groups and t.groups:
        for group, actions in groups.items():
            if group in t.groups and (action in actions or WILDCARD in actions):
                return Decision(
                    allowed=True,
                    decided_by=DecidedBy.ACL,
                    acl_entry=f"group:{group}",
                    scope_allowed=True,
                )
    return t.nothing


def _scoped(t: Table, obj: Object, d: Decision) -> Decision:
    if t.scope_names_ok and (t.scope_any_id or obj.id in t.scope_ids):
        return d
    return Decision(
        allowed=False,
        decided_by=d.decided_by,
        role=d.role,
        permission=d.permission,
        acl_entry=d.acl_entry,
        scope_allowed=False,
    )


def check(compiled: CompiledSubject, action: str, obj: Object) -> Decision:
    """Decide whether ``compiled``'s subject may do ``action`` on ``obj``.

    Raises :class:`~watchword.errors.UnknownResourceType` or
    :class:`~watchword.errors.UnknownAction` for what the registry does not define.
    """
    t = compiled._tables.get((obj.type, action)) or compiled.table(obj.type, action)
    d = t.global_decision
    if d is None:
        if t.open:  # a membership may not be decided yet (see LevelDecisions)
            d = t.org_level.value(obj.org_id) or t.project_level.value(obj.project_id)
        else:  # every membership decided: a key outside them abstains
            d = t.org.get(obj.org_id) or t.project.get(obj.project_id)
        if d is None:
            if obj.owner == t.key:
                d = _owner(t, obj)
            if d is None:
                d = _acl(t, obj, action)
    if d.allowed and not t.scope_unrestricted:
        return _scoped(t, obj, d)
    return d


def _role_residual(t: Table) -> Node:
    g = t.global_decision
    if g is not None:
        return TRUE if g.allowed else FALSE
    orgs, projects = list(t.org_level.decided()), list(t.project_level.decided())
    allowed_orgs = [k for k, d in orgs if d.allowed]
    denied_orgs = [k for k, d in orgs if not d.allowed]
    allowed_projects = [k for k, d in projects if d.allowed]
    denied_projects = [k for k, d in projects if not d.allowed]
    acl = any_of(
        acl_has(AclKind.USERS, (t.key,), t.action),
        acl_has(AclKind.GROUPS, t.groups, t.action),
    )
    owner_orgs, owner_projects = list(t.owner_org.decided()), list(t.owner_project.decided())
    og = t.owner_global
    if og is not None or owner_orgs or owner_projects:
        owner_denies = any_of(
            TRUE if og is not None and not og.allowed else FALSE,
            is_in(Field.ORG_ID, [k for k, d in owner_orgs if not d.allowed]),
            is_in(Field.PROJECT_ID, [k for k, d in owner_projects if not d.allowed]),
        )
        owner_allows = any_of(
            TRUE if og is not None and og.allowed else FALSE,
            is_in(Field.ORG_ID, [k for k, d in owner_orgs if d.allowed]),
            is_in(Field.PROJECT_ID, [k for k, d in owner_projects if d.allowed]),
        )
        is_owner = equals(Field.OWNER, t.key)
        owner_stage = any_of(
            all_of(is_owner, negate(owner_denies), owner_allows),
            all_of(negate(all_of(is_owner, owner_denies)), acl),
        )
    else:
        owner_stage = acl
    project_stage = any_of(
        is_in(Field.PROJECT_ID, allowed_projects),
        all_of(negate(is_in(Field.PROJECT_ID, denied_projects)), owner_stage),
    )
    return any_of(
        is_in(Field.ORG_ID, allowed_orgs),
        all_of(negate(is_in(Field.ORG_ID, denied_orgs)), project_stage),
    )


def _scope_residual(t: Table) -> Node:
    if t.scope_unrestricted:
        return TRUE
    if not t.scope_names_ok:
        return FALSE
    return is_in(Field.ID, t.scope_ids)


class Prepared:
    """A residual for (subject, action, type): evaluate it per object, or compile it to SQL."""

    __slots__ = ("_filter", "_pred", "action", "residual", "subject_key", "type_name")

    def __init__(self, type_name: str, action: str, subject_key: str, residual: Node) -> None:
        self.type_name = type_name
        self.action = action
        self.subject_key = subject_key
        self.residual = residual
        self._pred: Callable[[Object], bool] | None = None
        self._filter: Callable[[Sequence[Object]], list[Object]] | None = None

    @property
    def node_count(self) -> int:
        return node_count(self.residual)

    def to_dict(self) -> dict[str, object]:
        return {
            "type": self.type_name,
            "action": self.action,
            "residual": residual_to_dict(self.residual),
        }

    def matches(self, obj: Object) -> bool:
        """Whether the subject may do the action on ``obj`` (same answer as :func:`check`)."""
        if obj.type != self.type_name:
            raise InvalidInput(f"prepared for type {self.type_name!r}, got {obj.type!r}")
        pred = self._pred
        if pred is None:
            pred = self._pred = compile_predicate(self.residual)
        return pred(obj)

    def filter(self, objects: Sequence[Object]) -> list[Object]:
        """The objects that match, in order; all must be of the prepared type."""
        fn = self._filter
        if fn is None:
            fn = self._filter = compile_filter(self.residual, self.type_name)
        return fn(objects)

    def to_sql(self, columns: ColumnMapping) -> SqlCondition:
        """A SQLAlchemy boolean expression with bound parameters (see :mod:`.sql`)."""
        from watchword.authz.sql import residual_to_sql

        return residual_to_sql(self.residual, columns)

    def __repr__(self) -> str:
        return f"Prepared(type={self.type_name!r}, action={self.action!r}, nodes={self.node_count})"


def prepare(compiled: CompiledSubject, action: str, type_name: str) -> Prepared:
    """Partially evaluate the policy for every object of ``type_name``."""
    t = compiled.table(type_name, action)
    scope = _scope_residual(t)
    residual = FALSE if scope == FALSE else all_of(_role_residual(t), scope)
    return Prepared(type_name, action, compiled.key, residual)


def filter_objects(
    compiled: CompiledSubject,
    action: str,
    objects: Iterable[Object],
    *,
    prepare_from: int = FILTER_PREPARE_THRESHOLD,
) -> list[Object]:
    """Keep the objects ``action`` is allowed on, in their order; types may be mixed.

    Lists shorter than ``prepare_from`` are checked object by object, longer ones through
    :func:`prepare`, once per type among them (same answers either way).
    """
    items = objects if isinstance(objects, Sequence) else list(objects)
    if not items:
        return []
    if len(items) < prepare_from:
        return [obj for obj in items if check(compiled, action, obj).allowed]
    types = {obj.type for obj in items}
    if len(types) == 1:
        return prepare(compiled, action, types.pop()).filter(items)
    prepared = {name: prepare(compiled, action, name) for name in sorted(types)}
    return [obj for obj in items if prepared[obj.type].matches(obj)]
