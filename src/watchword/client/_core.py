"""Everything the sync and async clients share but the I/O: the calls each method makes,
how answers are read, when to try again, the decision cache, the credential.

A method of :class:`~watchword.client.Client` or :class:`~watchword.client.AsyncClient`
asks :class:`Core` for a :class:`Call` (method, path, body, whether it is idempotent, and
how to read the answer), runs it through its own runner (blocking or async), and returns
what the call's reader made of the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Generic, TypeVar
from urllib.parse import quote

import httpx

from watchword import __version__, errors
from watchword.client._cache import CacheKey, DecisionCache, cache_key
from watchword.client._errors import (
    error_from_response,
    error_from_transport,
    parse_retry_after,
)
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
    object_json,
    subject_json,
)
from watchword.client._retry import NEVER_SENT, TRANSIENT, Retry
from watchword.secret import REDACTED, Secret

__all__ = ["MAX_BATCH", "POLICY_GENERATION_HEADER", "BatchPlan", "Call", "Core"]

POLICY_GENERATION_HEADER: Final = "X-Watchword-Policy-Generation"
MAX_BATCH: Final = 1000  # questions per /v1/authz/check call (the server's limit)
USER_AGENT: Final = f"watchword-client/{__version__}"

log = logging.getLogger("watchword.client")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP call and how to read its answer (``read`` gets a 2xx response)."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    idempotent: bool = True
    json: Any = field(default=None, repr=False)
    form: Mapping[str, str] | None = field(default=None, repr=False)  # may hold a token
    params: Mapping[str, str | int] | None = None


class _Bearer(httpx.Auth):
    """``Authorization: Bearer`` from a :class:`Secret`, added as each request is sent."""

    def __init__(self, secret: Secret) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return f"_Bearer({REDACTED!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._secret.reveal()}"
        yield request


def shown_url(url: httpx.URL) -> str:
    """The URL without any user information (a password in it would be a secret)."""
    return str(url.copy_with(username=None, password=None)) if url.userinfo else str(url)


def generation_of(response: httpx.Response) -> int | None:
    value = response.headers.get(POLICY_GENERATION_HEADER)
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _json(response: httpx.Response) -> Any:
    return response.json()


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@dataclass(slots=True)
class BatchPlan:
    """A batch: answers from the cache in place, one call per chunk of the rest."""

    results: list[Decision | None]
    calls: list[Call[None]] = field(default_factory=list)

    def decisions(self) -> list[Decision]:
        missing = [i for i, d in enumerate(self.results) if d is None]
        if missing:  # pragma: no cover - every call fills its slots or raises
            raise RuntimeError(f"questions {missing} were not answered")
        return [d for d in self.results if d is not None]


class Core:
    """Requests, answers, retries and the cache, without I/O."""

    def __init__(
        self,
        base_url: str | httpx.URL,
        credential: str | Secret | None,
        *,
        retry: Retry | None,
        cache: DecisionCache | None,
    ) -> None:
        self.base_url = httpx.URL(str(base_url))
        if isinstance(credential, str):
            credential = Secret(credential)
        self.auth: httpx.Auth | None = None if credential is None else _Bearer(credential)
        self.has_credential = credential is not None
        self.retry = retry if retry is not None else Retry()
        self.cache = cache
        self.policy_generation: int | None = None

    def http_options(
        self, *, timeout: float | httpx.Timeout, headers: Mapping[str, str] | None
    ) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client`` / ``httpx.AsyncClient``."""
        return {
            "base_url": self.base_url,
            "auth": self.auth,
            "timeout": timeout,
            "headers": {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
            "follow_redirects": False,
        }

    def describe(self, name: str) -> str:
        credential = "Secret('**********')" if self.has_credential else "None"
        return (
            f"{name}(base_url={shown_url(self.base_url)!r}, credential={credential}, "
            f"retry={self.retry!r}, cache={self.cache!r})"
        )

    # Answers, errors and retries -----------------------------------------------------------

    def answered(self, call: Call[T], response: httpx.Response) -> T:
        """A 2xx answer: note its policy generation, then read it."""
        generation = generation_of(response)
        if generation is not None:
            self.policy_generation = generation
            if self.cache is not None:
                self.cache.observe(generation)
        return call.read(response)

    def next_wait(
        self,
        call: Call[Any],
        tries: int,
        response: httpx.Response | None,
        failure: httpx.TransportError | None,
    ) -> float | None:
        """Seconds to wait before trying ``call`` again after its ``tries``-th try failed
        (an error ``response`` or a transport ``failure``), or ``None``: raise now."""
        if response is not None:
            if response.status_code != 503:
                return None
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            wait = self.retry.delay(tries, retry_after)
            why = "503"
        else:
            assert failure is not None  # noqa: S101 - one of the two is given
            retryable = isinstance(failure, NEVER_SENT) or (
                call.idempotent and isinstance(failure, TRANSIENT)
            )
            if not retryable:
                return None
            wait = self.retry.delay(tries)
            why = type(failure).__name__
        if wait is not None:
            log.info(
                "watchword client: %s %s failed (%s) on try %d of %d; trying again in %.3f s",
                call.method,
                call.path,
                why,
                tries,
                self.retry.attempts,
                wait,
            )
        return wait

    def failure(
        self, response: httpx.Response | None, failure: httpx.TransportError | None
    ) -> errors.WatchwordError:
        if response is not None:
            return error_from_response(response)
        assert failure is not None  # noqa: S101 - one of the two is given
        return error_from_transport(failure, shown_url(self.base_url))

    # Authorization -------------------------------------------------------------------------

    def check(
        self, subject: SubjectLike, action: str, obj: ObjectLike
    ) -> tuple[Decision | None, Call[Decision]]:
        """(the cached decision or ``None``, the call that asks the server)."""
        part = subject_json(subject)
        wire = object_json(obj)
        cache = self.cache
        key: CacheKey | None = None
        hit: Decision | None = None
        if cache is not None:
            key = cache_key(part, action, wire)
            hit = cache.get(key)

        def read(response: httpx.Response) -> Decision:
            decision = Decision.from_json(_json(response))
            if cache is not None and key is not None:
                cache.put(key, decision, generation_of(response))
            return decision

        body = {**part, "action": action, "object": wire}
        return hit, Call("POST", "/v1/authz/check", read, json=body)

    def check_batch(
        self, subject: SubjectLike, questions: Iterable[tuple[str, ObjectLike]]
    ) -> BatchPlan:
        part = subject_json(subject)
        asked = [(action, object_json(obj)) for action, obj in questions]
        cache = self.cache
        if cache is None:
            keys: list[CacheKey] = []
            plan = BatchPlan([None] * len(asked))
        else:
            keys = [cache_key(part, action, wire) for action, wire in asked]
            plan = BatchPlan([cache.get(k) for k in keys])
        todo = [i for i, d in enumerate(plan.results) if d is None]
        for start in range(0, len(todo), MAX_BATCH):
            chunk = todo[start : start + MAX_BATCH]
            plan.calls.append(self._batch_call(plan, part, asked, keys, chunk))
        return plan

    def _batch_call(
        self,
        plan: BatchPlan,
        part: Mapping[str, Any],
        asked: Sequence[tuple[str, Mapping[str, Any]]],
        keys: Sequence[CacheKey],
        chunk: Sequence[int],
    ) -> Call[None]:
        def read(response: httpx.Response) -> None:
            results = _json(response)["results"]
            if len(results) != len(chunk):
                raise errors.WatchwordError(
                    f"the server answered {len(results)} of {len(chunk)} questions"
                )
            generation = generation_of(response)
            for i, data in zip(chunk, results, strict=True):
                decision = Decision.from_json(data)
                plan.results[i] = decision
                if self.cache is not None:
                    self.cache.put(keys[i], decision, generation)

        batch = [{"action": asked[i][0], "object": asked[i][1]} for i in chunk]
        return Call("POST", "/v1/authz/check", read, json={**part, "batch": batch})

    def explain(self, subject: SubjectLike, action: str, obj: ObjectLike) -> Call[Explanation]:
        body = {**subject_json(subject), "action": action, "object": object_json(obj)}
        return Call(
            "POST", "/v1/authz/explain", lambda r: Explanation.from_json(_json(r)), json=body
        )

    def filter(
        self,
        subject: SubjectLike,
        action: str,
        type: str,
        objects: Iterable[ObjectLike] | None,
        sql: Mapping[str, Any] | None,
    ) -> Call[FilterResult]:
        body: dict[str, Any] = {**subject_json(subject), "action": action, "type": type}
        if objects is not None:
            body["objects"] = [object_json(o) for o in objects]
        if sql is not None:
            body["sql"] = dict(sql)
        return Call(
            "POST", "/v1/authz/filter", lambda r: FilterResult.from_json(_json(r)), json=body
        )

    # Tokens --------------------------------------------------------------------------------

    def create_token(
        self,
        *,
        name: str,
        kind: TokenKindName,
        scopes: Iterable[str],
        permission: str,
        expires_at: datetime | None,
        owner_subject: str | None,
        owner_issuer: str | None,
        organization_id: str | None,
    ) -> Call[CreatedToken]:
        body = _drop_none(
            {
                "kind": kind,
                "name": name,
                "scopes": list(scopes),
                "permission": permission,
                "expires_at": None if expires_at is None else expires_at.isoformat(),
                "owner_subject": owner_subject,
                "owner_issuer": owner_issuer,
                "organization_id": organization_id,
            }
        )
        return Call(
            "POST",
            "/v1/tokens",
            lambda r: CreatedToken.from_json(_json(r)),
            idempotent=False,
            json=body,
        )

    def list_tokens(
        self,
        *,
        cursor: str | None,
        limit: int | None,
        owner_subject: str | None,
        owner_issuer: str | None,
        organization_id: str | None,
    ) -> Call[TokenPage]:
        params = _drop_none(
            {
                "cursor": cursor,
                "limit": limit,
                "owner_subject": owner_subject,
                "owner_issuer": owner_issuer,
                "organization_id": organization_id,
            }
        )
        return Call(
            "GET", "/v1/tokens", lambda r: TokenPage.from_json(_json(r)), params=params or None
        )

    def get_token(self, token_id: str) -> Call[Token]:
        return Call("GET", f"/v1/tokens/{_segment(token_id)}", lambda r: Token.from_json(_json(r)))

    def rotate_token(self, token_id: str) -> Call[CreatedToken]:
        return Call(
            "POST",
            f"/v1/tokens/{_segment(token_id)}/rotate",
            lambda r: CreatedToken.from_json(_json(r)),
            idempotent=False,
        )

    def revoke_token(self, token_id: str) -> Call[Token]:
        # Idempotent on the server: revoking a revoked token answers it as it is.
        return Call(
            "POST",
            f"/v1/tokens/{_segment(token_id)}/revoke",
            lambda r: Token.from_json(_json(r)),
        )

    def introspect(self, token: str | Secret) -> Call[Introspection]:
        value = token.reveal() if isinstance(token, Secret) else token
        return Call(
            "POST",
            "/v1/oauth/introspect",
            lambda r: Introspection.from_json(_json(r)),
            form={"token": value},
        )

    # ACL -----------------------------------------------------------------------------------

    def acl(self, organization_id: str | None) -> Call[AclDocument]:
        path = (
            "/v1/acl"
            if organization_id is None
            else f"/v1/organizations/{_segment(organization_id)}/acl"
        )
        return Call("GET", path, lambda r: AclDocument.from_json(_json(r)))

    def query_acl(
        self,
        issuer: str,
        subject: str,
        *,
        claims: Mapping[str, Any] | None,
        organization_id: str | None,
        scope: Iterable[str] | None,
    ) -> Call[AclDocument]:
        body = _drop_none(
            {
                "issuer": issuer,
                "subject": subject,
                "claims": None if claims is None else dict(claims),
                "organization_id": organization_id,
                "scope": None if scope is None else list(scope),
            }
        )
        return Call("POST", "/v1/acl/query", lambda r: AclDocument.from_json(_json(r)), json=body)


def _segment(value: str) -> str:
    """A path segment: an id can never reach another route (``/``, ``..`` are escaped)."""
    if value in {"", ".", ".."}:
        raise errors.InvalidInput(f"{value!r} is not an id")
    return quote(value, safe="")
