"""Role permission documents: the stored/wire JSON shape ↔ the authz model's blocks.

Pure. The shape is ``{"<level>": [{"resource_type": str, "actions": [str], "effect":
"allow"|"deny"}]}`` with levels ``global``, ``organization``, ``project``, ``owner``. Shape
errors raise :class:`~watchword.errors.InvalidInput` whose pointer names the bad field
(``/permissions/organization/0/resource_type``); whether types and actions are registered is
checked against the policy (:meth:`watchword.authz.model.Policy.with_role`), which points the
same way.

An organization's role grants within its organization only: its document has no ``global``
block (one would never be applied, so it is refused rather than stored).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from watchword.authz.model import Effect, Level, Permission, Role
from watchword.errors import InvalidInput

__all__ = [
    "check_role_levels",
    "permissions_from_json",
    "permissions_to_json",
    "role_from_json",
]

_LEVELS = {level.value: level for level in Level}
_EFFECTS = {effect.value: effect for effect in Effect}


def _permission(raw: object, pointer: str) -> Permission:
    if not isinstance(raw, Mapping):
        raise InvalidInput("a permission must be an object", pointer=pointer)
    unknown = sorted(set(raw) - {"resource_type", "actions", "effect"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", pointer=f"{pointer}/{unknown[0]}")
    type_name = raw.get("resource_type")
    if not isinstance(type_name, str) or not type_name:
        raise InvalidInput("must be a resource type name", pointer=f"{pointer}/resource_type")
    actions = raw.get("actions")
    if not isinstance(actions, list) or not actions:
        raise InvalidInput("must be a non-empty list of actions", pointer=f"{pointer}/actions")
    for i, action in enumerate(actions):
        if not isinstance(action, str) or not action:
            raise InvalidInput("must be an action name", pointer=f"{pointer}/actions/{i}")
    effect_raw = raw.get("effect", "allow")
    effect = _EFFECTS.get(effect_raw) if isinstance(effect_raw, str) else None
    if effect is None:
        raise InvalidInput("must be allow or deny", pointer=f"{pointer}/effect")
    return Permission(type_name, frozenset(actions), effect)


def permissions_from_json(
    data: object, *, pointer: str = "/permissions"
) -> Mapping[Level, tuple[Permission, ...]]:
    """Parse a permissions document (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise InvalidInput("permissions must be an object keyed by level", pointer=pointer)
    blocks: dict[Level, tuple[Permission, ...]] = {}
    for name, entries in data.items():
        level = _LEVELS.get(name)
        if level is None:
            raise InvalidInput(
                f"unknown level {name!r}; use global, organization, project or owner",
                pointer=f"{pointer}/{name}",
            )
        if not isinstance(entries, list):
            raise InvalidInput("must be a list of permissions", pointer=f"{pointer}/{name}")
        blocks[level] = tuple(
            _permission(raw, f"{pointer}/{name}/{i}") for i, raw in enumerate(entries)
        )
    return MappingProxyType(blocks)


def check_role_levels(
    organization_id: str | None, data: object, *, pointer: str = "/permissions"
) -> None:
    """Refuse a ``global`` block in the permissions of an organization's role."""
    if organization_id is not None and isinstance(data, Mapping) and Level.GLOBAL.value in data:
        raise InvalidInput(
            "an organization's role grants nothing globally: remove the global block "
            "(global grants are catalogue roles bound with role bindings or system accounts)",
            pointer=f"{pointer}/{Level.GLOBAL.value}",
        )


def permissions_to_json(blocks: Mapping[Level, tuple[Permission, ...]]) -> dict[str, object]:
    return {
        level.value: [
            {
                "resource_type": p.resource_type,
                "actions": sorted(p.actions),
                "effect": p.effect.value,
            }
            for p in blocks[level]
        ]
        for level in Level
        if blocks.get(level)
    }


def role_from_json(role_id: str, permissions: object) -> Role:
    """The authz role for a stored role: its name in the policy is the role's id."""
    return Role(role_id, permissions_from_json(permissions))
