"""Issue 15 item 2: revoking a token revokes what it made (children by ``parent_id``) and
its successors (``rotated_from``), recursively, in one transaction, caches included.

The scenarios take a :class:`Services`, so the PostgreSQL suite runs them too."""

from __future__ import annotations

import secrets

import pytest

from watchword.errors import TokenRevoked
from watchword.services import Services
from watchword.tokens import IssuedToken, NewToken, Owner, Permission, TokenKind


def _spec(owner: Owner, name: str, parent: IssuedToken | None = None) -> NewToken:
    return NewToken(
        TokenKind.PERSONAL,
        name,
        owner,
        frozenset({"*:*"}),
        permission=Permission.READ_WRITE,
        parent_id=parent.record.id if parent is not None else None,
    )


async def revoking_a_root_revokes_its_whole_subtree(services: Services) -> None:
    tokens = services.tokens
    owner = Owner(services.runtime.settings.issuer_url, f"lin-{secrets.token_hex(4)}")
    root = await tokens.create(_spec(owner, "root"))
    child = await tokens.create(_spec(owner, "child", root))
    child_next = await tokens.rotate(child.record.id)  # child still in its grace period
    grandchild = await tokens.create(_spec(owner, "grandchild", child_next))
    root_next = await tokens.rotate(root.record.id)
    bystander = await tokens.create(_spec(owner, "bystander"))
    subtree = (root, child, child_next, grandchild, root_next)
    for issued in (*subtree, bystander):
        await tokens.verify(issued.token)  # all valid, and now cached in this process

    revoked = await tokens.revoke(root.record.id)

    assert revoked.id == root.record.id and revoked.revoked_at is not None
    for issued in subtree:
        with pytest.raises(TokenRevoked):
            await tokens.verify(issued.token)
        assert (await tokens.get(issued.record.id)).revoked_at == revoked.revoked_at
    assert (await tokens.verify(bystander.token)).revoked_at is None


async def a_revoked_token_cannot_make_a_child(services: Services) -> None:
    tokens = services.tokens
    owner = Owner(services.runtime.settings.issuer_url, f"lin-{secrets.token_hex(4)}")
    root = await tokens.create(_spec(owner, "root"))
    await tokens.revoke(root.record.id)
    with pytest.raises(TokenRevoked):
        await tokens.create(_spec(owner, "late child", root))


async def test_revoke_sqlite_revokes_children_successors_and_grandchildren(
    services: Services,
) -> None:
    await revoking_a_root_revokes_its_whole_subtree(services)


async def test_create_sqlite_child_of_a_revoked_token_is_token_revoked(
    services: Services,
) -> None:
    await a_revoked_token_cannot_make_a_child(services)


async def test_revoke_of_a_middle_token_leaves_its_parent_valid(services: Services) -> None:
    tokens = services.tokens
    owner = Owner(services.runtime.settings.issuer_url, "lin-middle")
    root = await tokens.create(_spec(owner, "root"))
    child = await tokens.create(_spec(owner, "child", root))
    grandchild = await tokens.create(_spec(owner, "grandchild", child))
    await tokens.revoke(child.record.id)
    assert (await tokens.verify(root.token)).revoked_at is None
    with pytest.raises(TokenRevoked):
        await tokens.verify(grandchild.token)
