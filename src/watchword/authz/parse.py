"""Parse JSON-shaped documents into model values, with a JSON pointer on every error.

The shapes are the ones the values' ``to_dict`` methods produce (round trips hold), so the
HTTP layer, the CLI and policy-test files share one format. Errors are
:class:`~watchword.errors.InvalidInput` (or a subclass) whose ``pointer`` (RFC 6901) names
the bad field, e.g. ``/roles/2/permissions/organization/0/actions``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Final, TypeVar

from watchword.authz.model import (
    WILDCARD,
    AccountType,
    Effect,
    Level,
    Object,
    Permission,
    Policy,
    ProjectMembership,
    Registry,
    ResourceType,
    Role,
    Subject,
    TokenScope,
)
from watchword.errors import InvalidInput

__all__ = [
    "parse_object",
    "parse_policy",
    "parse_resource_type",
    "parse_role",
    "parse_subject",
]


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _obj(data: object, pointer: str) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise InvalidInput("expected an object", pointer=pointer or "/")
    for key in data:
        if not isinstance(key, str):
            raise InvalidInput("object keys must be strings", pointer=pointer or "/")
    return data


def _str(data: Mapping[str, object], key: str, pointer: str, *, required: bool = True) -> str:
    value = data.get(key)
    if type(value) is str and value:
        return value
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{key!r} must be a non-empty string", pointer=f"{pointer}/{key}")
    return value


def _opt_str(data: Mapping[str, object], key: str, pointer: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(
            f"{key!r} must be a non-empty string or null", pointer=f"{pointer}/{key}"
        )
    return value


def _str_list(value: object, pointer: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise InvalidInput("expected a list of strings", pointer=pointer)
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise InvalidInput("expected a non-empty string", pointer=f"{pointer}/{i}")
    return frozenset(value)


def _known(
    data: Mapping[str, object],
    allowed: set[str],
    pointer: str,
    renamed: Mapping[str, str] | None = None,
) -> None:
    """Refuse a key not in ``allowed``; a ``renamed`` one's error names its replacement."""
    for key in data:
        if key not in allowed:
            message = f"unknown field {key!r}"
            if renamed is not None and key in renamed:
                message += f"; use {renamed[key]!r}"
            raise InvalidInput(message, pointer=f"{pointer}/{_escape(key)}")


def parse_resource_type(data: object, pointer: str = "") -> ResourceType:
    doc = _obj(data, pointer)
    _known(doc, {"name", "actions"}, pointer)
    name = _str(doc, "name", pointer)
    actions = _str_list(doc.get("actions"), f"{pointer}/actions")
    try:
        return ResourceType(name, actions)
    except InvalidInput as exc:
        exc.pointer = f"{pointer}{exc.pointer or ''}"
        raise


def _parse_permission(data: object, pointer: str) -> Permission:
    doc = _obj(data, pointer)
    _known(doc, {"resource_type", "actions", "effect"}, pointer)
    effect_name = doc.get("effect", "allow")
    try:
        effect = Effect(effect_name)
    except ValueError:
        raise InvalidInput(
            "'effect' must be 'allow' or 'deny'", pointer=f"{pointer}/effect"
        ) from None
    actions = _str_list(doc.get("actions"), f"{pointer}/actions")
    if not actions:
        raise InvalidInput("a permission needs at least one action", pointer=f"{pointer}/actions")
    if WILDCARD in actions and len(actions) > 1:
        raise InvalidInput("'*' must be the only action when used", pointer=f"{pointer}/actions")
    return Permission(_str(doc, "resource_type", pointer), actions, effect)


def parse_role(data: object, pointer: str = "") -> Role:
    """A role's structure; references are checked when it enters a :class:`Policy`."""
    doc = _obj(data, pointer)
    _known(doc, {"name", "permissions"}, pointer)
    name = _str(doc, "name", pointer)
    blocks = _obj(doc.get("permissions", {}), f"{pointer}/permissions")
    permissions: dict[Level, tuple[Permission, ...]] = {}
    for level_name, perms in blocks.items():
        at = f"{pointer}/permissions/{_escape(level_name)}"
        try:
            level = Level(level_name)
        except ValueError:
            raise InvalidInput(
                f"unknown level {level_name!r}; use global, organization, project or owner",
                pointer=at,
            ) from None
        if not isinstance(perms, list):
            raise InvalidInput("expected a list of permissions", pointer=at)
        permissions[level] = tuple(_parse_permission(p, f"{at}/{i}") for i, p in enumerate(perms))
    return Role(name, MappingProxyType(permissions))


def parse_policy(data: object, pointer: str = "", version: int = 1) -> Policy:
    """``{"resource_types": [...], "roles": [...]}`` validated together."""
    doc = _obj(data, pointer)
    types_doc = doc.get("resource_types", [])
    if not isinstance(types_doc, list):
        raise InvalidInput("expected a list", pointer=f"{pointer}/resource_types")
    types = [
        parse_resource_type(t, f"{pointer}/resource_types/{i}") for i, t in enumerate(types_doc)
    ]
    try:
        registry = Registry.of(types)
    except InvalidInput as exc:
        exc.pointer = f"{pointer}/resource_types"
        raise
    roles_doc = doc.get("roles", [])
    if not isinstance(roles_doc, list):
        raise InvalidInput("expected a list", pointer=f"{pointer}/roles")
    roles = [parse_role(r, f"{pointer}/roles/{i}") for i, r in enumerate(roles_doc)]
    try:
        return Policy.build(registry, roles, version)
    except InvalidInput as exc:
        exc.pointer = f"{pointer}{exc.pointer or ''}"
        raise


def _parse_scope(data: object, pointer: str) -> TokenScope | None:
    if data is None:
        return None
    doc = _obj(data, pointer)
    _known(doc, {"names", "allow_list"}, pointer)
    names = _str_list(doc.get("names"), f"{pointer}/names")
    raw = doc.get("allow_list", [{"type": WILDCARD, "id": WILDCARD}])
    if not isinstance(raw, list):
        raise InvalidInput("expected a list", pointer=f"{pointer}/allow_list")
    entries = set()
    for i, entry in enumerate(raw):
        at = f"{pointer}/allow_list/{i}"
        e = _obj(entry, at)
        entries.add((_str(e, "type", at), _str(e, "id", at)))
    return TokenScope(names, frozenset(entries))


_MISS: Final = object()
_V = TypeVar("_V")


class _Lazy(Mapping[str, _V]):
    """A JSON object of a subject document (id → entry) as a mapping whose entries are
    checked and converted (:meth:`_convert`, with the entry's pointer) the first time they
    are read: parsing a subject in a thousand organizations does not walk them; a check
    reads the one it needs. Iterating (``to_dict``, ``prepare``, ``validate``) checks every
    entry."""

    __slots__ = ("_done", "_pointer", "_raw")

    def __init__(self, raw: Mapping[str, object], pointer: str) -> None:
        self._raw = raw
        self._pointer = pointer
        self._done: dict[str, _V] = {}

    def _convert(self, raw: object, pointer: str) -> _V:
        raise NotImplementedError

    def get(self, key: str, default: object = None) -> _V | None:  # type: ignore[override]
        done = self._done.get(key)
        if done is not None:
            return done
        raw = self._raw.get(key, _MISS)
        if raw is _MISS:
            return default  # type: ignore[return-value]
        value = self._done[key] = self._convert(raw, f"{self._pointer}/{_escape(key)}")
        return value

    def __getitem__(self, key: str) -> _V:
        value = self.get(key, _MISS)
        if value is _MISS:
            raise KeyError(key)
        return value  # type: ignore[return-value]

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def __iter__(self) -> Iterator[str]:
        for key in self._raw:
            if not isinstance(key, str):
                raise InvalidInput("object keys must be strings", pointer=self._pointer)
            yield key

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._raw)} entries)"


class _LazyRoles(_Lazy[frozenset[str]]):
    """A subject document's ``organizations`` (org id → role names), see :class:`_Lazy`."""

    __slots__ = ()

    def _convert(self, raw: object, pointer: str) -> frozenset[str]:
        return _str_list(raw, pointer)


class _LazyProjects(_Lazy[ProjectMembership]):
    """A subject document's ``projects`` (project id → ``{"organization", "roles"}``), see
    :class:`_Lazy`."""

    __slots__ = ()

    def _convert(self, raw: object, pointer: str) -> ProjectMembership:
        e = _obj(raw, pointer)
        _known(e, {"organization", "roles"}, pointer)
        return ProjectMembership(
            _opt_str(e, "organization", pointer), _str_list(e.get("roles"), f"{pointer}/roles")
        )


def _mapping(data: object, pointer: str) -> Mapping[str, object]:
    """An object whose keys are checked when it is walked, not now."""
    if not isinstance(data, Mapping):
        raise InvalidInput("expected an object", pointer=pointer or "/")
    return data


_SUBJECT_FIELDS: Final = frozenset(
    {"issuer", "id", "account_type", "global_roles", "organizations", "projects", "groups",
     "scope"}
)  # fmt: skip
_RENAMED_SUBJECT_FIELDS: Final = {
    "org_roles": "organizations",
    "project_roles": "projects",
    "project_orgs": "projects",
}
"""The Python field names of an older :class:`Subject`, refused with their replacement."""
_ACCOUNT_TYPES: Final = {t.value: t for t in AccountType}
_NO_NAMES: Final = frozenset[str]()
_EMPTY: Final[dict[str, object]] = {}


def _names(value: object, pointer: str, name: str) -> frozenset[str]:
    """:func:`_str_list` of ``value`` at ``pointer/name``, the pointer built on error only."""
    if value is None:
        return _NO_NAMES
    if type(value) is list:
        for item in value:
            if type(item) is not str or not item:
                break
        else:
            return frozenset(value)
    return _str_list(value, f"{pointer}/{name}")


def parse_subject(data: object, pointer: str = "") -> Subject:
    """A subject document. Its ``organizations`` and ``projects`` entries are checked when
    first read (see :class:`_Lazy`): O(1) in the number of memberships. The former Python
    names ``org_roles``, ``project_roles`` and ``project_orgs`` are refused, the error
    naming ``organizations`` or ``projects``.

    The document is read, not copied: do not change it after parsing (a check may already
    have read and remembered some of its entries, and not others)."""
    if type(data) is not dict:
        data = _obj(data, pointer)
    doc: Mapping[str, object] = data
    for key in doc:
        if key not in _SUBJECT_FIELDS:
            _obj(doc, pointer)  # a key that is not a string says so
            _known(doc, set(_SUBJECT_FIELDS), pointer, _RENAMED_SUBJECT_FIELDS)
    given = doc.get("account_type", "user")
    account_type = _ACCOUNT_TYPES.get(given) if type(given) is str else None
    if account_type is None:
        raise InvalidInput(
            "'account_type' must be user, service or system", pointer=f"{pointer}/account_type"
        )
    orgs_doc = doc.get("organizations", _EMPTY)
    if type(orgs_doc) is not dict:
        orgs_doc = _mapping(orgs_doc, f"{pointer}/organizations")  # null is refused too
    projects_doc = doc.get("projects", _EMPTY)
    if type(projects_doc) is not dict:
        projects_doc = _mapping(projects_doc, f"{pointer}/projects")
    scope = doc.get("scope")
    try:
        return Subject(
            _str(doc, "issuer", pointer),
            _str(doc, "id", pointer),
            account_type,
            _names(doc.get("global_roles"), pointer, "global_roles"),
            _LazyRoles(orgs_doc, pointer + "/organizations"),
            _LazyProjects(projects_doc, pointer + "/projects"),
            _names(doc.get("groups"), pointer, "groups"),
            None if scope is None else _parse_scope(scope, f"{pointer}/scope"),
        )
    except InvalidInput as exc:
        if exc.pointer and not exc.pointer.startswith(pointer or "/"):
            exc.pointer = f"{pointer}{exc.pointer}"
        raise


def _parse_acl(data: object, pointer: str) -> dict[str, frozenset[str]]:
    doc = _obj(data if data is not None else {}, pointer)
    return {k: _str_list(v, f"{pointer}/{_escape(k)}") for k, v in doc.items()}


def parse_object(data: object, pointer: str = "") -> Object:
    doc = _obj(data, pointer)
    _known(doc, {"type", "id", "org_id", "project_id", "owner", "acl"}, pointer)
    acl = _obj(doc.get("acl") or {}, f"{pointer}/acl")
    _known(acl, {"users", "groups"}, f"{pointer}/acl")
    return Object(
        type=_str(doc, "type", pointer),
        id=_str(doc, "id", pointer),
        org_id=_opt_str(doc, "org_id", pointer),
        project_id=_opt_str(doc, "project_id", pointer),
        owner=_opt_str(doc, "owner", pointer),
        acl_users=MappingProxyType(_parse_acl(acl.get("users"), f"{pointer}/acl/users")),
        acl_groups=MappingProxyType(_parse_acl(acl.get("groups"), f"{pointer}/acl/groups")),
    )
