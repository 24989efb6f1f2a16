"""Seeding helpers shared by tests: a member of an organization and a personal token."""

from __future__ import annotations

from collections.abc import Iterable

from watchword.rbac.model import GroupMember
from watchword.rbac.store.context import StoreContext
from watchword.rbac.store.groups import create_group
from watchword.services import Services
from watchword.tokens.format import TokenKind
from watchword.tokens.model import Owner
from watchword.tokens.scope import Permission
from watchword.tokens.service import IssuedToken, NewToken

__all__ = ["add_members", "personal_token"]


async def add_members(
    store: StoreContext,
    organization_id: str,
    issuer: str,
    subjects: Iterable[str],
    *,
    roles: Iterable[str] = ("org-reader",),
    name: str = "readers",
) -> None:
    """A group of ``organization_id`` holding ``roles``, with ``subjects`` of ``issuer``."""
    await create_group(
        store,
        organization_id=organization_id,
        name=name,
        members=[GroupMember(issuer, s) for s in subjects],
        role_ids=list(roles),
    )


async def personal_token(
    services: Services,
    issuer: str,
    subject: str,
    *,
    scopes: Iterable[str] = ("*:*",),
    permission: Permission = Permission.READ_WRITE,
    name: str = "t",
) -> IssuedToken:
    """A personal API token of (``issuer``, ``subject``)."""
    return await services.tokens.create(
        NewToken(
            kind=TokenKind.PERSONAL,
            name=name,
            owner=Owner(issuer, subject),
            scopes=frozenset(scopes),
            permission=permission,
        )
    )
