"""Token scopes: ``resource:action`` names, and whether the token may write.

Pure rules. A scope name splits on its last ``:`` (resource type names contain colons
themselves), and ``*`` may stand for the resource or the action, as in
:class:`watchword.authz.model.TokenScope`. A token that creates another token may only
hand on what it holds itself (:func:`covers`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Final

from watchword.errors import InvalidInput

__all__ = [
    "MAX_SCOPES",
    "READ_ONLY_ACTIONS",
    "Permission",
    "covers",
    "effective_scopes",
    "name_covered",
    "normalize_scopes",
]

WILDCARD: Final = "*"
_NAME = re.compile(r"(?:\*|[a-z0-9][a-z0-9_.:-]{0,120}):(?:\*|[a-z0-9][a-z0-9_.-]{0,60})")
MAX_SCOPES: Final = 100
# Rules: the actions a read-only token keeps; every other action is dropped from its scope.
READ_ONLY_ACTIONS: Final = frozenset({"read", "check"})


class Permission(StrEnum):
    READ_ONLY = "ro"
    READ_WRITE = "rw"

    def covers(self, other: Permission) -> bool:
        return self is Permission.READ_WRITE or other is Permission.READ_ONLY


def normalize_scopes(names: Iterable[str]) -> frozenset[str]:
    """Validate scope names; :class:`InvalidInput` pointing at ``/scopes`` when one is bad."""
    out = frozenset(names)
    if len(out) > MAX_SCOPES:
        raise InvalidInput(f"at most {MAX_SCOPES} scopes", pointer="/scopes")
    for name in out:
        if not _NAME.fullmatch(name):
            raise InvalidInput(f"scope {name!r} is not a resource:action name", pointer="/scopes")
    return out


def name_covered(held: frozenset[str], requested: str) -> bool:
    """Whether one requested name is within the held names (wildcards in held match any)."""
    if requested in held or f"{WILDCARD}:{WILDCARD}" in held:
        return True
    resource, _, action = requested.rpartition(":")
    if resource != WILDCARD and f"{resource}:{WILDCARD}" in held:
        return True
    return WILDCARD not in (resource, action) and f"{WILDCARD}:{action}" in held


def covers(
    held: frozenset[str],
    held_permission: Permission,
    requested: frozenset[str],
    requested_permission: Permission,
) -> bool:
    """Whether a token holding ``held`` may create one with ``requested`` (a subset)."""
    return held_permission.covers(requested_permission) and all(
        name_covered(held, name) for name in requested
    )


def effective_scopes(names: frozenset[str], permission: Permission) -> frozenset[str]:
    """The scope names the policy engine narrows a token's owner to.

    A read-write token keeps its names. A read-only token keeps only the read-only actions
    (:data:`READ_ONLY_ACTIONS`) of each name: ``compute:clusters:*`` becomes
    ``compute:clusters:read`` and ``compute:clusters:check``, ``compute:clusters:delete`` is
    dropped. So ``ro`` is enforced by the same scope check as the names themselves.
    """
    if permission is Permission.READ_WRITE:
        return names
    kept: set[str] = set()
    for name in names:
        resource, _, action = name.rpartition(":")
        if action == WILDCARD:
            kept.update(f"{resource}:{a}" for a in READ_ONLY_ACTIONS)
        elif action in READ_ONLY_ACTIONS:
            kept.add(name)
    return frozenset(kept)
