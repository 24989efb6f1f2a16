"""Parse JSON-shaped documents into model values, with a JSON pointer on every error.

The shapes are the ones the values' ``to_dict`` methods produce (round trips hold), so the
HTTP layer, the CLI and policy-test files share one format. Errors are
:class:`~watchword.errors.InvalidInput` (or a subclass) whose ``pointer`` (RFC 6901) names
the bad field, e.g. ``/roles/2/permissions/organization/0/actions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from watchword.authz.model import (
    WILDCARD,
    AccountType,
    Effect,
    Level,
    Object,
    Permission,
    Policy,
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


def _known(data: Mapping[str, object], allowed: set[str], pointer: str) -> None:
    for key in data:
        if key not in allowed:
            raise InvalidInput(f"unknown field {key!r}", pointer=f"{pointer}/{_escape(key)}")


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


def parse_subject(data: object, pointer: str = "") -> Subject:
    doc = _obj(data, pointer)
    _known(
        doc,
        {"issuer", "id", "account_type", "global_roles", "organizations", "projects", "groups",
         "scope"},
        pointer,
    )  # fmt: skip
    try:
        account_type = AccountType(doc.get("account_type", "user"))
    except ValueError:
        raise InvalidInput(
            "'account_type' must be user, service or system", pointer=f"{pointer}/account_type"
        ) from None
    orgs_doc = _obj(doc.get("organizations", {}), f"{pointer}/organizations")
    org_roles = {
        org: _str_list(names, f"{pointer}/organizations/{_escape(org)}")
        for org, names in orgs_doc.items()
    }
    projects_doc = _obj(doc.get("projects", {}), f"{pointer}/projects")
    project_roles: dict[str, frozenset[str]] = {}
    project_orgs: dict[str, str] = {}
    for project, entry in projects_doc.items():
        at = f"{pointer}/projects/{_escape(project)}"
        e = _obj(entry, at)
        _known(e, {"organization", "roles"}, at)
        project_roles[project] = _str_list(e.get("roles"), f"{at}/roles")
        org = _opt_str(e, "organization", at)
        if org is not None:
            project_orgs[project] = org
    try:
        return Subject(
            issuer=_str(doc, "issuer", pointer),
            id=_str(doc, "id", pointer),
            account_type=account_type,
            global_roles=_str_list(doc.get("global_roles"), f"{pointer}/global_roles"),
            org_roles=MappingProxyType(org_roles),
            project_roles=MappingProxyType(project_roles),
            project_orgs=MappingProxyType(project_orgs),
            groups=_str_list(doc.get("groups"), f"{pointer}/groups"),
            scope=_parse_scope(doc.get("scope"), f"{pointer}/scope"),
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
