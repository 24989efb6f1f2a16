"""The values of the authorization model: resource types, roles, subjects, objects, decisions.

Invariants this module owns:

- A :class:`Policy` only ever holds roles whose permissions name registered resource types
  and actions (or ``*``); every change returns a new policy with ``version + 1``.
- A subject's identity is the pair (issuer, id); its key string is ``"<issuer>|<id>"``,
  which is what object owners and ACL user entries hold. Issuers never contain ``|``.
- Values are immutable; mappings held by them must not be mutated by callers.

The rules that decide (levels, deny-over-allow, ACL, scope) are in :mod:`.compile` and
:mod:`.evaluate`; this module only describes the data.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Never, NoReturn

from watchword.errors import InvalidInput, UnknownAction, UnknownResourceType, UnknownRole

__all__ = [
    "EMPTY_ACL",
    "WILDCARD",
    "AccountType",
    "DecidedBy",
    "Decision",
    "Effect",
    "Level",
    "Object",
    "Permission",
    "Policy",
    "ProjectMembership",
    "Registry",
    "ResourceType",
    "Role",
    "Subject",
    "TokenScope",
    "subject_key",
]

WILDCARD = "*"
EMPTY_ACL: Mapping[str, Collection[str]] = MappingProxyType({})


class Level(enum.Enum):
    """Where a role's permission block applies, highest first (definition order is the walk)."""

    GLOBAL = "global"
    ORGANIZATION = "organization"
    PROJECT = "project"
    OWNER = "owner"


class Effect(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


class AccountType(enum.Enum):
    USER = "user"
    SERVICE = "service"
    SYSTEM = "system"


class DecidedBy(enum.Enum):
    """The stage of the walk that produced a decision; ``NOTHING`` means every stage abstained."""

    GLOBAL = "global"
    ORGANIZATION = "organization"
    PROJECT = "project"
    OWNER = "owner"
    ACL = "acl"
    NOTHING = "nothing"


def _require_name(value: str, what: str, pointer: str | None = None) -> None:
    if not value or value != value.strip():
        raise InvalidInput(
            f"{what} must be a non-empty string without surrounding spaces", pointer=pointer
        )


@dataclass(frozen=True, slots=True)
class ResourceType:
    """A kind of object (``compute:clusters``) and the actions defined on it."""

    name: str
    actions: frozenset[str]

    def __post_init__(self) -> None:
        _require_name(self.name, "resource type name", "/name")
        if self.name == WILDCARD:
            raise InvalidInput("'*' is not a resource type name", pointer="/name")
        if not self.actions:
            raise InvalidInput(f"resource type {self.name!r} has no actions", pointer="/actions")
        for action in self.actions:
            _require_name(action, "action", "/actions")
            if action == WILDCARD:
                raise InvalidInput("'*' is not an action name", pointer="/actions")

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "actions": sorted(self.actions)}


@dataclass(frozen=True, slots=True)
class Registry:
    """The registered resource types, by name."""

    types: Mapping[str, ResourceType] = field(default_factory=dict)

    @classmethod
    def of(cls, types: Iterable[ResourceType]) -> Registry:
        by_name: dict[str, ResourceType] = {}
        for rt in types:
            if rt.name in by_name:
                raise InvalidInput(f"resource type {rt.name!r} is registered twice")
            by_name[rt.name] = rt
        return cls(MappingProxyType(by_name))

    def get(self, name: str) -> ResourceType:
        rt = self.types.get(name)
        if rt is None:
            raise UnknownResourceType(f"resource type {name!r} is not registered")
        return rt

    def require_action(self, type_name: str, action: str) -> None:
        """Raise unless ``action`` is defined on the registered type ``type_name``."""
        if action not in self.get(type_name).actions:
            raise UnknownAction(f"action {action!r} is not defined on resource type {type_name!r}")

    def with_type(self, rt: ResourceType) -> Registry:
        return Registry(MappingProxyType({**self.types, rt.name: rt}))

    def to_dict(self) -> list[dict[str, object]]:
        return [self.types[name].to_dict() for name in sorted(self.types)]


@dataclass(frozen=True, slots=True)
class Permission:
    """Grant or deny ``actions`` on ``resource_type``; ``*`` matches any registered one."""

    resource_type: str
    actions: frozenset[str]
    effect: Effect = Effect.ALLOW

    def matches(self, type_name: str, action: str) -> bool:
        return (self.resource_type in (WILDCARD, type_name)) and (
            WILDCARD in self.actions or action in self.actions
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "resource_type": self.resource_type,
            "actions": sorted(self.actions),
            "effect": self.effect.value,
        }

    def __str__(self) -> str:
        return f"{self.effect.value} {self.resource_type}:{{{','.join(sorted(self.actions))}}}"


@dataclass(frozen=True, slots=True)
class Role:
    """A named set of permission blocks, one per :class:`Level` (missing levels are empty)."""

    name: str
    permissions: Mapping[Level, tuple[Permission, ...]] = field(default_factory=dict)

    def block(self, level: Level) -> tuple[Permission, ...]:
        return self.permissions.get(level, ())

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "permissions": {
                level.value: [p.to_dict() for p in self.block(level)]
                for level in Level
                if self.block(level)
            },
        }


@dataclass(frozen=True, slots=True)
class TokenScope:
    """What a token may do at most: ``type:action`` names and an allow-list of (type, id).

    ``*`` may stand for the type or the action in a name (``*:*``, ``compute:clusters:*``),
    and for the type or the id in an allow-list entry. Names split on the last ``:``,
    since resource type names contain colons themselves.
    """

    names: frozenset[str]
    allow_list: frozenset[tuple[str, str]] = frozenset({(WILDCARD, WILDCARD)})

    def allows_name(self, type_name: str, action: str) -> bool:
        names = self.names
        return (
            f"{type_name}:{action}" in names
            or f"{type_name}:*" in names
            or f"*:{action}" in names
            or "*:*" in names
        )

    def allows_any_id(self, type_name: str) -> bool:
        return (WILDCARD, WILDCARD) in self.allow_list or (type_name, WILDCARD) in self.allow_list

    def allowed_ids(self, type_name: str) -> frozenset[str]:
        """Ids allowed explicitly for ``type_name`` (entries naming that type or ``*``)."""
        return frozenset(
            i for (t, i) in self.allow_list if t in (type_name, WILDCARD) and i != WILDCARD
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "names": sorted(self.names),
            "allow_list": [{"type": t, "id": i} for (t, i) in sorted(self.allow_list)],
        }


def subject_key(issuer: str, subject_id: str) -> str:
    """The string that names a subject in object owners and ACLs: ``"<issuer>|<id>"``."""
    return f"{issuer}|{subject_id}"


@dataclass(frozen=True, slots=True)
class ProjectMembership:
    """The subject's place in one project: the project's organization (``None`` when the
    document does not name one) and the role names held there."""

    organization: str | None
    roles: frozenset[str]

    def to_dict(self) -> dict[str, object]:
        return {"organization": self.organization, "roles": sorted(self.roles)}


_RENAMED_SUBJECT_FIELDS: Final = frozenset({"org_roles", "project_roles", "project_orgs"})


def _refuse_renamed_keywords(keywords: Mapping[str, object]) -> NoReturn:
    """The ``TypeError`` of ``Subject(...)`` given keywords it does not take; for a former
    field name, it names the new fields."""
    for name in keywords:
        if name in _RENAMED_SUBJECT_FIELDS:
            raise TypeError(
                f"Subject() got an unexpected keyword argument {name!r}: use "
                "organizations={org id: role names} and "
                "projects={id: ProjectMembership(organization, roles)}"
            )
    raise TypeError(f"Subject() got an unexpected keyword argument {next(iter(keywords))!r}")


def _missing_attribute(name: str) -> NoReturn:
    """``AttributeError`` for a missing attribute, naming the new fields for a removed one."""
    message = f"'Subject' object has no attribute {name!r}"
    if name in _RENAMED_SUBJECT_FIELDS:
        message += (
            ": read subject.organizations ({org id: role names}) and "
            "subject.projects ({id: ProjectMembership(organization, roles)})"
        )
    raise AttributeError(message, name=name)


_NO_ORGANIZATIONS: Final[Mapping[str, frozenset[str]]] = MappingProxyType({})
_NO_PROJECTS: Final[Mapping[str, ProjectMembership]] = MappingProxyType({})


@dataclass(frozen=True, slots=True, init=False)
class Subject:
    """Who is asking: identity, roles by level, groups and an optional token scope.

    The fields are the subject document's (see :func:`~.parse.parse_subject`):
    ``organizations`` maps an organization id to the role names held there, ``projects`` a
    project id to its :class:`ProjectMembership`. The former names ``org_roles``,
    ``project_roles`` and ``project_orgs`` raise an error that names these.
    """

    issuer: str
    id: str
    account_type: AccountType
    global_roles: frozenset[str]
    organizations: Mapping[str, frozenset[str]]
    projects: Mapping[str, ProjectMembership]
    groups: frozenset[str]
    scope: TokenScope | None

    def __init__(
        self,
        issuer: str,
        id: str,
        account_type: AccountType = AccountType.USER,
        global_roles: frozenset[str] = frozenset(),
        organizations: Mapping[str, frozenset[str]] = _NO_ORGANIZATIONS,
        projects: Mapping[str, ProjectMembership] = _NO_PROJECTS,
        groups: frozenset[str] = frozenset(),
        scope: TokenScope | None = None,
        **removed: Never,  # only so that the former names get an error naming the new ones
    ) -> None:
        if removed:
            _refuse_renamed_keywords(removed)
        _require_name(issuer, "issuer", "/issuer")
        _require_name(id, "subject id", "/id")
        if "|" in issuer:
            raise InvalidInput("issuer must not contain '|'", pointer="/issuer")
        set_field = object.__setattr__
        set_field(self, "issuer", issuer)
        set_field(self, "id", id)
        set_field(self, "account_type", account_type)
        set_field(self, "global_roles", global_roles)
        set_field(self, "organizations", organizations)
        set_field(self, "projects", projects)
        set_field(self, "groups", groups)
        set_field(self, "scope", scope)

    if not TYPE_CHECKING:
        # Hidden from mypy, which would otherwise accept any attribute name on a Subject.
        def __getattr__(self, name: str) -> NoReturn:  # only called for missing ones
            _missing_attribute(name)

    @property
    def key(self) -> str:
        return subject_key(self.issuer, self.id)

    def role_count(self) -> int:
        return (
            len(self.global_roles)
            + sum(len(r) for r in self.organizations.values())
            + sum(len(m.roles) for m in self.projects.values())
        )

    def to_dict(self) -> dict[str, object]:
        projects = self.projects
        return {
            "issuer": self.issuer,
            "id": self.id,
            "account_type": self.account_type.value,
            "global_roles": sorted(self.global_roles),
            "organizations": {o: sorted(r) for o, r in sorted(self.organizations.items())},
            "projects": {p: projects[p].to_dict() for p in sorted(projects)},
            "groups": sorted(self.groups),
            "scope": None if self.scope is None else self.scope.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class Object:
    """The thing acted on. ``owner`` is a subject key; ACL values are action names or ``*``."""

    type: str
    id: str
    org_id: str | None = None
    project_id: str | None = None
    owner: str | None = None
    acl_users: Mapping[str, Collection[str]] = field(default_factory=lambda: EMPTY_ACL)
    acl_groups: Mapping[str, Collection[str]] = field(default_factory=lambda: EMPTY_ACL)

    def acl_entry_count(self) -> int:
        return len(self.acl_users) + len(self.acl_groups)

    def to_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "id": self.id,
            "org_id": self.org_id,
            "project_id": self.project_id,
            "owner": self.owner,
            "acl": {
                "users": {k: sorted(v) for k, v in sorted(self.acl_users.items())},
                "groups": {k: sorted(v) for k, v in sorted(self.acl_groups.items())},
            },
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one check.

    ``role``/``permission`` name what decided at a role level; ``acl_entry`` is
    ``"user:<key>"`` or ``"group:<id>"`` when the ACL allowed. ``scope_allowed`` is ``None``
    when the roles and ACL already denied (the scope was not consulted).
    """

    allowed: bool
    decided_by: DecidedBy
    role: str | None = None
    permission: Permission | None = None
    acl_entry: str | None = None
    scope_allowed: bool | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "decided_by": self.decided_by.value,
            "role": self.role,
            "permission": None if self.permission is None else self.permission.to_dict(),
            "acl_entry": self.acl_entry,
            "scope_allowed": self.scope_allowed,
        }


def _validate_role(role: Role, registry: Registry) -> None:
    """Raise :class:`InvalidInput` with a pointer into the role document on a bad reference."""
    _require_name(role.name, "role name", "/name")
    known_actions = frozenset(a for rt in registry.types.values() for a in rt.actions)
    for level, perms in role.permissions.items():
        for i, perm in enumerate(perms):
            base = f"/permissions/{level.value}/{i}"
            if not perm.actions:
                raise InvalidInput(
                    "a permission needs at least one action", pointer=f"{base}/actions"
                )
            if perm.resource_type == WILDCARD:
                allowed = known_actions
            else:
                rt = registry.types.get(perm.resource_type)
                if rt is None:
                    raise UnknownResourceType(
                        f"resource type {perm.resource_type!r} is not registered",
                        pointer=f"{base}/resource_type",
                    )
                allowed = rt.actions
            for action in sorted(perm.actions):
                if action != WILDCARD and action not in allowed:
                    raise UnknownAction(
                        f"action {action!r} is not defined on {perm.resource_type!r}",
                        pointer=f"{base}/actions",
                    )


@dataclass(frozen=True, slots=True)
class Policy:
    """Resource types and roles, validated together, with a version bumped on every change.

    Build with :meth:`build`; change with :meth:`with_role`, :meth:`without_role`,
    :meth:`with_resource_type`. Each change validates first, so a bad role leaves the
    current policy as it was.
    """

    registry: Registry
    roles: Mapping[str, Role]
    version: int = 1
    # Memo of role block verdicts keyed by (role, level, type, action); values are immutable
    # so sharing it between threads is safe (a race only computes an entry twice).
    verdicts: dict[tuple[str, Level, str, str], tuple[Effect, Permission] | None] = field(
        default_factory=dict, compare=False, repr=False
    )
    # Memo of role-set decisions (authz.compile.roleset_decision), keyed by (role names,
    # level code, type, action); bounded there. Same sharing argument.
    decisions: dict[tuple[object, ...], object] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(cls, registry: Registry, roles: Iterable[Role], version: int = 1) -> Policy:
        by_name: dict[str, Role] = {}
        for i, role in enumerate(roles):
            try:
                _validate_role(role, registry)
            except InvalidInput as exc:
                exc.pointer = f"/roles/{i}{exc.pointer or ''}"
                raise
            if role.name in by_name:
                raise InvalidInput(
                    f"role {role.name!r} is defined twice", pointer=f"/roles/{i}/name"
                )
            by_name[role.name] = role
        return cls(registry, MappingProxyType(by_name), version)

    def with_role(self, role: Role) -> Policy:
        _validate_role(role, self.registry)
        return Policy(
            self.registry, MappingProxyType({**self.roles, role.name: role}), self.version + 1
        )

    def without_role(self, name: str) -> Policy:
        if name not in self.roles:
            raise UnknownRole(f"role {name!r} does not exist")
        roles = {k: v for k, v in self.roles.items() if k != name}
        return Policy(self.registry, MappingProxyType(roles), self.version + 1)

    def with_resource_type(self, rt: ResourceType) -> Policy:
        registry = self.registry.with_type(rt)
        return Policy.build(registry, self.roles.values(), self.version + 1)

    def role(self, name: str) -> Role:
        role = self.roles.get(name)
        if role is None:
            raise UnknownRole(f"role {name!r} does not exist")
        return role
