"""Who called an app's route: the :class:`Caller` every integration hands to the app.

Invariants:

- A caller always names its subject as the pair (``issuer``, ``subject``), the key RBAC and
  the policy engine use for everyone, whatever the credential.
- ``authz_subject`` is what the engine of the caller's mode needs: a
  :class:`~watchword.authz.CompiledSubject` (embedded: compiled with the credential's scope
  folded in) or a :class:`~watchword.client.SubjectRef` (remote: watchword resolves it; the
  scope is applied beside the server's answer, see :mod:`watchword.integrations._remote`).
- Nothing secret is held: the credential itself is never kept, and the verified claims and
  the compiled subject stay out of ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from watchword.authz.compile import CompiledSubject
from watchword.client import SubjectRef

__all__ = ["Caller", "CallerKind"]

_NO_CLAIMS: Mapping[str, object] = MappingProxyType({})


class CallerKind(StrEnum):
    """The kind of credential a caller authenticated with."""

    API_TOKEN = "token"  # noqa: S105 - a kind name, not a secret
    SESSION = "session"
    BEARER_JWT = "jwt"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller of an app's route.

    ``scopes`` narrow what the credential may do (``None``: not narrowed; for a read-only
    API token, only its read-only actions are left). ``credential_id`` identifies the
    credential (the API token's or the session's id; ``None`` for a bearer JWT), not the
    person. ``organization_id`` is the organization an API token is bound to, if any.
    ``claims`` are the verified claims of a bearer JWT or a session (empty for API tokens).
    """

    kind: CallerKind
    issuer: str
    subject: str
    authz_subject: CompiledSubject | SubjectRef = field(repr=False)
    scopes: frozenset[str] | None = None
    credential_id: str | None = None
    organization_id: str | None = None
    claims: Mapping[str, object] = field(default_factory=lambda: _NO_CLAIMS, repr=False)
