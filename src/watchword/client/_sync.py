"""The blocking client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from watchword.client._cache import DecisionCache
from watchword.client._core import Call, Core
from watchword.client._models import (
    AclDocument,
    CreatedToken,
    Decision,
    Explanation,
    FilterResult,
    Introspection,
    ObjectLike,
    SubjectLike,
    Token,
    TokenKindName,
    TokenPage,
)
from watchword.client._retry import Retry
from watchword.secret import Secret

__all__ = ["Client"]

T = TypeVar("T")


class Client:
    """A blocking client of a watchword server (``docs/client.md``).

    ``credential`` (an admin key or an API token, sent as ``Authorization: Bearer``) is
    kept in a :class:`~watchword.secret.Secret`: no repr, error or log shows it. ``retry``
    says when and how often to try again (:class:`Retry`; ``NO_RETRY`` never does);
    ``cache`` keeps check decisions (:class:`DecisionCache`; none by default). ``transport``
    and ``sleep`` replace httpx's transport and ``time.sleep`` (tests).
    """

    def __init__(
        self,
        base_url: str | httpx.URL,
        credential: str | Secret | None = None,
        *,
        timeout: float | httpx.Timeout = 10.0,
        retry: Retry | None = None,
        cache: DecisionCache | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._core = Core(base_url, credential, retry=retry, cache=cache)
        self._http = httpx.Client(
            transport=transport, **self._core.http_options(timeout=timeout, headers=headers)
        )
        self._sleep = sleep

    def __repr__(self) -> str:
        return self._core.describe(type(self).__name__)

    @property
    def cache(self) -> DecisionCache | None:
        return self._core.cache

    @property
    def policy_generation(self) -> int | None:
        """The server's policy generation, as its last ``/v1/authz/*`` answer showed it."""
        return self._core.policy_generation

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, call: Call[T]) -> T:
        tries = 0
        while True:
            tries += 1
            response: httpx.Response | None = None
            failure: httpx.TransportError | None = None
            try:
                response = self._http.request(
                    call.method, call.path, json=call.json, data=call.form, params=call.params
                )
            except httpx.TransportError as exc:
                failure = exc
            if response is not None and response.is_success:
                return self._core.answered(call, response)
            wait = self._core.next_wait(call, tries, response, failure)
            if wait is None:
                raise self._core.failure(response, failure) from failure
            self._sleep(wait)

    # Authorization -------------------------------------------------------------------------

    def check(self, subject: SubjectLike, action: str, obj: ObjectLike) -> Decision:
        """May ``subject`` do ``action`` on ``obj``? (From the cache when it holds it.)"""
        hit, call = self._core.check(subject, action, obj)
        return hit if hit is not None else self._run(call)

    def check_batch(
        self, subject: SubjectLike, questions: Iterable[tuple[str, ObjectLike]]
    ) -> list[Decision]:
        """Many ``(action, object)`` questions about one subject, answered in order: one
        HTTP call per 1,000 questions the cache does not hold (none if it holds them all)."""
        plan = self._core.check_batch(subject, questions)
        for call in plan.calls:
            self._run(call)
        return plan.decisions()

    def explain(self, subject: SubjectLike, action: str, obj: ObjectLike) -> Explanation:
        """Why ``check`` answers as it does: every level's verdict, and the text form."""
        return self._run(self._core.explain(subject, action, obj))

    def filter(
        self,
        subject: SubjectLike,
        action: str,
        type: str,
        *,
        objects: Iterable[ObjectLike] | None = None,
        sql: Mapping[str, Any] | None = None,
    ) -> FilterResult:
        """Which objects of ``type`` may ``subject`` ``action``: the residual predicate;
        with ``objects``, the allowed ids among them; with ``sql`` (the caller's table, see
        ``docs/authz.md``), a WHERE fragment."""
        return self._run(self._core.filter(subject, action, type, objects, sql))

    # Tokens --------------------------------------------------------------------------------

    def create_token(
        self,
        name: str,
        *,
        kind: TokenKindName = "personal",
        scopes: Iterable[str] = (),
        permission: str = "ro",
        expires_at: datetime | None = None,
        owner_subject: str | None = None,
        owner_issuer: str | None = None,
        organization_id: str | None = None,
    ) -> CreatedToken:
        """Create a token; its plaintext (``.token``, a Secret) is shown this once. Not
        idempotent: tried again only when the request cannot have reached the server."""
        return self._run(
            self._core.create_token(
                name=name,
                kind=kind,
                scopes=scopes,
                permission=permission,
                expires_at=expires_at,
                owner_subject=owner_subject,
                owner_issuer=owner_issuer,
                organization_id=organization_id,
            )
        )

    def list_tokens(
        self,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        owner_subject: str | None = None,
        owner_issuer: str | None = None,
        organization_id: str | None = None,
    ) -> TokenPage:
        """One page of tokens (never their secrets), oldest first."""
        return self._run(
            self._core.list_tokens(
                cursor=cursor,
                limit=limit,
                owner_subject=owner_subject,
                owner_issuer=owner_issuer,
                organization_id=organization_id,
            )
        )

    def iter_tokens(
        self,
        *,
        limit: int | None = None,
        owner_subject: str | None = None,
        owner_issuer: str | None = None,
        organization_id: str | None = None,
    ) -> Iterator[Token]:
        """Every token, page after page (``limit``: the page size)."""
        cursor: str | None = None
        while True:
            page = self.list_tokens(
                cursor=cursor,
                limit=limit,
                owner_subject=owner_subject,
                owner_issuer=owner_issuer,
                organization_id=organization_id,
            )
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_token(self, token_id: str) -> Token:
        return self._run(self._core.get_token(token_id))

    def rotate_token(self, token_id: str) -> CreatedToken:
        """Replace a token; the successor's plaintext is shown this once. Not idempotent."""
        return self._run(self._core.rotate_token(token_id))

    def revoke_token(self, token_id: str) -> Token:
        """Revoke a token now (idempotent)."""
        return self._run(self._core.revoke_token(token_id))

    def introspect(self, token: str | Secret) -> Introspection:
        """RFC 7662 introspection of ``token``: ``active=False`` and nothing else for a
        token that is malformed, unknown, expired or revoked."""
        return self._run(self._core.introspect(token))

    # ACL -----------------------------------------------------------------------------------

    def acl(self, organization_id: str | None = None) -> AclDocument:
        """The caller's own ACL document (the credential must name a subject: an API token,
        not an admin key), or its ACL scoped to one organization."""
        return self._run(self._core.acl(organization_id))

    def query_acl(
        self,
        issuer: str,
        subject: str,
        *,
        claims: Mapping[str, Any] | None = None,
        organization_id: str | None = None,
        scope: Iterable[str] | None = None,
    ) -> AclDocument:
        """Another subject's ACL document (needs ``watchword:acl`` ``read``)."""
        return self._run(
            self._core.query_acl(
                issuer, subject, claims=claims, organization_id=organization_id, scope=scope
            )
        )
