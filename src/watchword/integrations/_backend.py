"""The one interface behind an integration's two modes, and what both share.

A :class:`Backend` answers four questions; :mod:`._embedded` answers them in process (the
app's own database, watchword's services), :mod:`._remote` by asking a watchword server
through :class:`watchword.client.AsyncClient`. The framework glue
(:mod:`watchword.integrations.fastapi`) reads the request, picks the credential and maps
answers to HTTP; it never learns which mode it talks to.

Rules both modes keep:

- The same credential gives the same :class:`~._caller.Caller` (issuer, subject, kind,
  scopes) and the same decision, whichever mode answers.
- An unknown resource type or action is never a quiet deny: :meth:`Backend.allowed` raises
  :class:`~watchword.errors.UnknownResourceType` / :class:`~watchword.errors.UnknownAction`
  (the glue turns them into a configuration error), and :meth:`Backend.unknown_pairs` names
  every declared pair the policy does not define, for validation at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Protocol

from watchword.authz.mapping import ObjectView
from watchword.authz.model import Object
from watchword.authz.residual import Node
from watchword.client import Resource
from watchword.integrations._bearer import VerifiedBearer
from watchword.integrations._caller import Caller
from watchword.principal import Credential

__all__ = ["TYPE_LEVEL_ID", "Backend", "Pair", "as_object", "type_of"]

Pair = tuple[str, str]
"""(resource type, action)."""

TYPE_LEVEL_ID: Final = "*"
"""The id of the object a type-level check asks about (creation: no object exists yet). It
has no owner and no ACL, so only global, organization and project roles decide; a token's
default allow-list admits any id. ``*`` rather than ``""``: a watchword server refuses an
empty id on the wire, and both modes must ask the same question."""


class Backend(Protocol):
    """An integration's mode: who a credential is, and what the caller may do."""

    async def authenticate(self, credential: Credential) -> Caller:
        """The caller of a watchword credential (an API token; a session cookie where the
        mode supports it), or an ``AuthenticationError``."""
        ...

    async def caller_for_bearer(self, verified: VerifiedBearer) -> Caller:
        """The caller of a bearer JWT already verified against its configured issuer."""
        ...

    async def allowed(self, caller: Caller, action: str, target: object) -> bool:
        """Whether ``caller`` may do ``action`` on ``target``: an authz ``Object`` or a client
        ``Resource`` in both modes; in embedded mode also an application object the engine
        maps (``Engine(objects=ObjectMappings(...))``). Raises
        ``UnknownResourceType``/``UnknownAction`` for what the policy does not define."""
        ...

    async def residual(self, caller: Caller, action: str, type_name: str) -> Node:
        """The condition an object of ``type_name`` must meet for ``caller`` to ``action``
        it (the policy partially evaluated, token scope included): what lists compile to
        SQL. Raises ``UnknownResourceType``/``UnknownAction`` as :meth:`allowed` does."""
        ...

    async def unknown_pairs(self, pairs: Iterable[Pair]) -> list[str]:
        """One reason per pair the current policy does not define (empty: all defined)."""
        ...

    async def aclose(self) -> None:
        """Release what the backend itself opened (never what it was given)."""
        ...


def type_of(target: object) -> str | None:
    """The resource type ``target`` names, when it is one of watchword's object shapes
    (``None`` for an app's own object, which the embedded engine maps itself)."""
    return target.type if isinstance(target, Object | Resource | ObjectView) else None


def as_object(target: object) -> object:
    """A client :class:`~watchword.client.Resource` as the :class:`Object` it stands for;
    anything else as it is."""
    if not isinstance(target, Resource):
        return target
    return Object(
        type=target.type,
        id=target.id,
        org_id=target.org_id,
        project_id=target.project_id,
        owner=target.owner,
        acl_users=dict(target.acl_users or {}),
        acl_groups=dict(target.acl_groups or {}),
    )
