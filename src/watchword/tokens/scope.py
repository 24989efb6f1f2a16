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

__all__ = ["MAX_SCOPES", "Permission", "covers", "name_covered", "normalize_scopes"]

WILDCARD: Final = "*"
_NAME = re.compile(r"(?:\*|[a-z0-9][a-z0-9_.:-]{0,120}):(?:\*|[a-z0-9][a-z0-9_.-]{0,60})")
MAX_SCOPES: Final = 100


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
