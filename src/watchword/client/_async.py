"""The async client: the same methods as :class:`~watchword.client.Client`, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
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

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """An async client of a watchword server (``docs/client.md``): :class:`Client`'s
    methods, as coroutines.

    ``credential`` (an admin key or an API token, sent as ``Authorization: Bearer``) is
    kept in a :class:`~watchword.secret.Secret`: no repr, error or log shows it. ``retry``
    says when and how often to try again (:class:`Retry`; ``NO_RETRY`` never does);
    ``cache`` keeps check decisions (:class:`DecisionCache`; none by default). ``transport``
    and ``sleep`` replace httpx's transport and ``asyncio.sleep`` (tests).
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
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._core = Core(base_url, credential, retry=retry, cache=cache)
        self._http = httpx.AsyncClient(
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

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self, call: Call[T]) -> T:
        tries = 0
        while True:
            tries += 1
            response: httpx.Response | None = None
            failure: httpx.TransportError | None = None
            try:
                response = await self._http.request(
                    call.method, call.path, json=call.json, data=call.form, params=call.params
                )
            except httpx.TransportError as exc:
                failure = exc
            if response is not None and response.is_success:
                return self._core.answered(call, response)
            wait = self._core.next_wait(call, tries, response, failure)
            if wait is None:
                raise self._core.failure(response, failure) from failure
            await self._sleep(wait)

    # Authorization -------------------------------------------------------------------------

    async def check(self, subject: SubjectLike, action: str, obj: ObjectLike) -> Decision:
        """May ``subject`` do ``action`` on ``obj``? (From the cache when it holds it.)"""
        hit, call = self._core.check(subject, action, obj)
        return hit if hit is not None else await self._run(call)

    async def check_batch(
        self, subject: SubjectLike, questions: Iterable[tuple[str, ObjectLike]]
    ) -> list[Decision]:
        """Many ``(action, object)`` questions about one subject, answered in order: one
        HTTP call per 1,000 questions the cache does not hold (none if it holds them all)."""
        plan = self._core.check_batch(subject, questions)
        for call in plan.calls:
            await self._run(call)
        return plan.decisions()

    async def explain(self, subject: SubjectLike, action: str, obj: ObjectLike) -> Explanation:
        """Why ``check`` answers as it does: every level's verdict, and the text form."""
        return await self._run(self._core.explain(subject, action, obj))

    async def filter(
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
        return await self._run(self._core.filter(subject, action, type, objects, sql))

    # Tokens --------------------------------------------------------------------------------

    async def create_token(
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
        return await self._run(
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

    async def list_tokens(
        self,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        owner_subject: str | None = None,
        owner_issuer: str | None = None,
        organization_id: str | None = None,
    ) -> TokenPage:
        """One page of tokens (never their secrets), oldest first."""
        return await self._run(
            self._core.list_tokens(
                cursor=cursor,
                limit=limit,
                owner_subject=owner_subject,
                owner_issuer=owner_issuer,
                organization_id=organization_id,
            )
        )

    async def iter_tokens(
        self,
        *,
        limit: int | None = None,
        owner_subject: str | None = None,
        owner_issuer: str | None = None,
        organization_id: str | None = None,
    ) -> AsyncIterator[Token]:
        """Every token, page after page (``limit``: the page size)."""
        cursor: str | None = None
        while True:
            page = await self.list_tokens(
                cursor=cursor,
                limit=limit,
                owner_subject=owner_subject,
                owner_issuer=owner_issuer,
                organization_id=organization_id,
            )
            for token in page.items:
                yield token
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get_token(self, token_id: str) -> Token:
        return await self._run(self._core.get_token(token_id))

    async def rotate_token(self, token_id: str) -> CreatedToken:
        """Replace a token; the successor's plaintext is shown this once. Not idempotent."""
        return await self._run(self._core.rotate_token(token_id))

    async def revoke_token(self, token_id: str) -> Token:
        """Revoke a token now (idempotent)."""
        return await self._run(self._core.revoke_token(token_id))

    async def introspect(self, token: str | Secret) -> Introspection:
        """RFC 7662 introspection of ``token``: ``active=False`` and nothing else for a
        token that is malformed, unknown, expired or revoked."""
        return await self._run(self._core.introspect(token))

    # ACL -----------------------------------------------------------------------------------

    async def acl(self, organization_id: str | None = None) -> AclDocument:
        """The caller's own ACL document (the credential must name a subject: an API token,
        not an admin key), or its ACL scoped to one organization."""
        return await self._run(self._core.acl(organization_id))

    async def query_acl(
        self,
        issuer: str,
        subject: str,
        *,
        claims: Mapping[str, Any] | None = None,
        organization_id: str | None = None,
        scope: Iterable[str] | None = None,
    ) -> AclDocument:
        """Another subject's ACL document (needs ``watchword:acl`` ``read``)."""
        return await self._run(
            self._core.query_acl(
                issuer, subject, claims=claims, organization_id=organization_id, scope=scope
            )
        )
