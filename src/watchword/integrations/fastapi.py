"""Protect a FastAPI app's routes with watchword (``docs/embedding.md``, "FastAPI").

A :class:`Guard` gives an app two dependencies:

- :attr:`Guard.caller` authenticates the request and gives the :class:`Caller`;
- :meth:`Guard.require` ``(resource_type, action, object=None)`` also checks that the caller
  may do ``action`` on the object the ``object`` dependency returns (or, without one, on the
  type: :data:`TYPE_LEVEL_ID`), and gives the same :class:`Caller`.

Two modes behind the one interface: :meth:`Guard.embedded` (watchword's services in process,
on the app's database) and :meth:`Guard.remote` (a watchword server, through
:class:`watchword.client.AsyncClient`).

Rules:

- Credentials, in order: ``Authorization: Bearer`` (a JWT of a configured issuer when it has
  a JWT's shape, else a watchword API token), then the session cookie (embedded mode only;
  a state-changing request carried by it must come from watchword's own origin or
  ``oidc.return_to_origins``, as in watchword's own API: 403 ``csrf_origin_mismatch``).
- No credential, or one that does not verify: 401. Not allowed: 403 ``forbidden``. Both are
  watchword's ``application/problem+json`` with its stable codes, the 401 with
  ``WWW-Authenticate: Bearer`` (:meth:`Guard.install` adds the handlers).
- Failed authentications are limited per client address (``auth.failed_limit`` in embedded
  mode), as in watchword's own API: past the limit, 429 before any look-up.
- Every ``(resource_type, action)`` a route requires is validated against the policy when
  the app starts (:meth:`Guard.validate`, run by the lifespan :meth:`Guard.install` wraps).
  A pair the policy does not define is never a quiet deny nor the caller's 400: a failed
  validation stops the start; a pair first seen later is validated on first use, and a
  request reaching one the policy does not define is a 500 ``config_invalid``, logged.

FastAPI is imported here and nowhere else in ``watchword.integrations`` (an import-linter
contract); the modes themselves are framework-free. This module does not use postponed
annotations: FastAPI reads the dependencies' annotations, built in closures, at runtime.
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any, TypeVar, cast

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Select

from watchword.api.deps import check_same_origin, session_cookie_name
from watchword.api.problem import error_response, install_problem_handlers
from watchword.api.ratelimit import FailedAuthLimiter
from watchword.authz.mapping import ObjectMapping, ObjectMappings
from watchword.authz.model import Object
from watchword.authz.sql import AclTable, JsonAcl, NoAcl, residual_to_sql
from watchword.client import AsyncClient
from watchword.clock import Clock, SystemClock
from watchword.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidInput,
    MalformedClaim,
    PermissionDenied,
    ServiceAccountForeignOrg,
    UnknownAction,
    UnknownResourceType,
    WatchwordError,
    WrongOrganizationCount,
)
from watchword.integrations._backend import TYPE_LEVEL_ID, Backend, Pair, type_of
from watchword.integrations._bearer import BearerIssuer, BearerVerifier, looks_like_jwt
from watchword.integrations._caller import Caller, CallerKind
from watchword.integrations._embedded import EmbeddedBackend, embedded_verifier
from watchword.integrations._remote import SESSIONS_UNSUPPORTED, RemoteBackend, remote_verifier
from watchword.integrations.sqlalchemy import filtered_rows
from watchword.observability.logging import get_logger
from watchword.principal import Credential, CredentialSource
from watchword.secret import Secret
from watchword.services import Services

__all__ = ["TYPE_LEVEL_ID", "BearerIssuer", "Caller", "CallerKind", "Guard"]

CALLERS_OWN = (MalformedClaim, WrongOrganizationCount, ServiceAccountForeignOrg)
"""Errors about the caller's own claims or memberships (the caller's 400, in both modes),
which a guard never turns into the app's configuration error."""

S = TypeVar("S", bound=Select[*tuple[Any, ...]])

log = get_logger("watchword.integrations")

_BEARER = HTTPBearer(
    auto_error=False,
    description="A watchword API token (ww?_…) or a JWT from an issuer the app trusts.",
)
_NO_CREDENTIAL = "this endpoint needs a credential: Authorization: Bearer …"


class Guard:
    """watchword's authentication and authorization for one FastAPI app.

    Build one with :meth:`embedded` or :meth:`remote` (nothing connects until the first
    request or :meth:`validate`), declare routes with :attr:`caller` and :meth:`require`,
    then call :meth:`install` on the app.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        verifier: BearerVerifier,
        limiter: FailedAuthLimiter,
        session_cookie: Callable[[], str] | None = None,
        same_origin: Callable[[Request], None] | None = None,
        http: httpx.AsyncClient | None = None,
        objects: Callable[[], ObjectMappings | None] = lambda: None,
    ) -> None:
        """Prefer :meth:`embedded` and :meth:`remote`. ``session_cookie`` names the cookie
        to read (``None``: cookies are not read), ``same_origin`` refuses a cookie-carried
        state-changing request from elsewhere, ``http`` is closed by :meth:`aclose`;
        ``objects`` gives the mappings the app's own objects are read through (to check
        that a route's object is of the route's type)."""
        self._backend = backend
        self._verifier = verifier
        self._limiter = limiter
        self._session_cookie = session_cookie
        self._same_origin = same_origin
        self._http = http
        self._objects = objects
        self._declared: set[Pair] = set()
        self._valid: set[Pair] = set()
        self.caller: Callable[..., Awaitable[Caller]] = self._caller_dependency()
        """The dependency authenticating the request: ``Depends(guard.caller)``."""

    # Construction -------------------------------------------------------------------------

    @classmethod
    def embedded(
        cls,
        services: Services,
        *,
        issuers: Sequence[BearerIssuer] = (),
        session_cookie: bool = True,
        objects: ObjectMappings | None = None,
    ) -> "Guard":
        """watchword in process: the app's :class:`Services` (it opens and closes them)
        authenticate and decide. ``issuers``: upstream issuers whose bearer JWTs are
        accepted (keys fetched with the services' HTTP client and ``oidc.*`` settings; an
        issuer that is a sign-in provider shares its key cache). ``session_cookie``: accept
        watchword's session cookie (named as ``sessions.cookie_name`` says). ``objects``:
        how the app's own objects are read (installed on ``services.policy_engine``, so
        ``require(..., object=...)`` dependencies may return ORM rows, and
        ``watchword.integrations.sqlalchemy.authorized`` finds the same mapping)."""
        if objects is not None:
            services.policy_engine.objects = objects
        return cls(
            EmbeddedBackend(services),
            verifier=embedded_verifier(services, issuers),
            limiter=FailedAuthLimiter(services.runtime.settings.auth.failed_limit),
            session_cookie=(lambda: session_cookie_name(services)) if session_cookie else None,
            same_origin=lambda request: check_same_origin(request, services),
            objects=lambda: services.policy_engine.objects,
        )

    @classmethod
    def remote(
        cls,
        client: AsyncClient,
        *,
        issuers: Sequence[BearerIssuer] = (),
        session_cookie: bool = False,
        failed_limit: str = "60/minute",
        clock: Clock | None = None,
        http_timeout: timedelta = timedelta(seconds=5),
        jwks_refresh_interval: timedelta = timedelta(seconds=60),
        allow_insecure_http: bool = False,
        objects: ObjectMappings | None = None,
    ) -> "Guard":
        """A watchword server decides, asked through ``client`` (the app opens and closes
        it; its credential needs ``watchword:authz`` ``check``, the ``authz-client`` role).
        Bearer JWTs of ``issuers`` are verified here, with keys fetched over an HTTP client
        the guard owns (``http_timeout``, ``jwks_refresh_interval``; ``allow_insecure_http``
        admits ``http://`` issuers on loopback, for tests). ``failed_limit``: failed
        authentications per client address (``"off"``: none). Session cookies are not
        supported: ``session_cookie=True`` raises :class:`ConfigurationError`."""
        if session_cookie:
            raise ConfigurationError(SESSIONS_UNSUPPORTED)
        clock = clock or SystemClock()
        http, verifier = None, BearerVerifier((), clock=clock)
        if issuers:
            http = httpx.AsyncClient(
                follow_redirects=False,
                timeout=http_timeout.total_seconds(),
                headers={"User-Agent": "watchword-integration"},
            )
            verifier = remote_verifier(
                issuers,
                http=http,
                clock=clock,
                timeout=http_timeout,
                jwks_refresh_interval=jwks_refresh_interval,
                allow_insecure_http=allow_insecure_http,
            )
        return cls(
            RemoteBackend(client, objects),
            verifier=verifier,
            limiter=FailedAuthLimiter(failed_limit),
            http=http,
            objects=lambda: objects,
        )

    # Dependencies -------------------------------------------------------------------------

    def _caller_dependency(self) -> Callable[..., Awaitable[Caller]]:
        async def caller(
            request: Request,
            bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
        ) -> Caller:
            return await self._authenticate(request, bearer)

        return caller

    def require(
        self,
        resource_type: str,
        action: str,
        object: Callable[..., Any] | None = None,  # the name apps read; shadows the builtin
        *,
        org_param: str | None = None,
        project_param: str | None = None,
    ) -> Callable[..., Awaitable[Caller]]:
        """A dependency: the caller may do ``action`` on ``resource_type``, or 403.

        With ``object``, a dependency giving the object (an :class:`watchword.authz.Object`,
        or what the engine maps): the caller is authenticated first, then the object is
        resolved, then checked. An ``Object`` of another type than ``resource_type`` is a
        configuration error (500), never a check of the wrong thing.

        Without ``object``, a type-level check (creation: no object exists yet), decided
        as watchword's own API decides creation: the object ``Object(resource_type, "*",
        org_id=…, project_id=…)`` with the organization and project taken from the path
        parameters named ``org_param`` and ``project_param`` (none: global roles only).
        Unlike watchword's API, a refusal is always 403, never a 404 for an organization
        the caller may not read: the app decides what its paths reveal.

        Usable as ``dependencies=[Depends(guard.require(...))]`` or as a parameter
        ``caller: Annotated[Caller, Depends(guard.require(...))]``.
        """
        if object is not None and (org_param or project_param):
            raise ConfigurationError("org_param and project_param are for type-level checks")
        self._declared.add((resource_type, action))
        caller_dependency = Depends(self.caller)

        if object is None:

            async def type_level(
                request: Request, caller: Annotated[Caller, caller_dependency]
            ) -> Caller:
                target = Object(
                    resource_type,
                    TYPE_LEVEL_ID,
                    org_id=_path_param(request, org_param),
                    project_id=_path_param(request, project_param),
                )
                await self._enforce(caller, resource_type, action, target)
                return caller

            return type_level

        async def object_level(
            caller: Annotated[Caller, caller_dependency],
            target: Annotated[Any, Depends(object)],
        ) -> Caller:
            await self._enforce(caller, resource_type, action, target)
            return caller

        return object_level

    # Questions ----------------------------------------------------------------------------

    async def authorized(
        self,
        stmt: S,
        caller: Caller,
        action: str,
        *,
        entity: type | None = None,
        mapping: ObjectMapping | None = None,
        acl: JsonAcl | AclTable | NoAcl | None = None,
        array_params: bool = False,
    ) -> S:
        """``stmt``, a select over a mapped class, keeping only the rows ``caller`` may
        ``action``: lists filtered (and paged, counted) by the database, in both modes.

        The class is the statement's first selected entity (or ``entity``), read through
        the guard's object mappings (or ``mapping``), as
        :func:`watchword.integrations.sqlalchemy.authorized`. Embedded: the engine prepares
        the condition (token scope included). Remote: one ``POST /v1/authz/filter`` gives the
        residual, compiled to SQL here over the same columns; the token's scope names are
        applied here (its allow-list of ids is not: ``subject_ref`` carries no scope). A
        mapping SQL cannot follow, or a type or action the policy lacks, is the app's
        :class:`ConfigurationError` (500), never the caller's error.
        """
        try:
            type_name, columns = filtered_rows(
                stmt,
                self._objects(),
                entity=entity,
                mapping=mapping,
                acl=acl,
                array_params=array_params,
            )
            residual = await self._backend.residual(caller, action, type_name)
        except CALLERS_OWN:
            raise  # the caller's claims or memberships: 400, as in process
        except (UnknownResourceType, UnknownAction) as exc:
            raise ConfigurationError(f"the policy changed under this app: {exc.detail}") from exc
        except InvalidInput as exc:
            raise ConfigurationError(f"cannot filter these rows: {exc.detail}") from exc
        return stmt.where(residual_to_sql(residual, columns))

    async def allowed(self, caller: Caller, action: str, target: object) -> bool:
        """Whether ``caller`` may do ``action`` on ``target``: for checks a route makes
        itself (lists, several objects). An undefined type or action raises
        :class:`ConfigurationError`."""
        try:
            return await self._backend.allowed(caller, action, target)
        except (UnknownResourceType, UnknownAction) as exc:
            type_name = type_of(target)
            if type_name is not None:
                self._valid.discard((type_name, action))
            raise ConfigurationError(f"the policy changed under this app: {exc.detail}") from exc
        except CALLERS_OWN:
            raise  # the caller's claims or memberships: 400, as in process
        except InvalidInput as exc:
            # Never the caller's input: the object the app gave (unmapped, malformed).
            raise ConfigurationError(f"the engine refused the object: {exc.detail}") from exc

    async def validate(self) -> None:
        """Check every ``(resource_type, action)`` declared by :meth:`require` against the
        policy; :class:`ConfigurationError` naming each one it does not define."""
        pairs = sorted(self._declared)
        reasons = await self._backend.unknown_pairs(pairs)
        if reasons:
            raise ConfigurationError(
                "routes require what the policy does not define: " + "; ".join(reasons)
            )
        self._valid.update(pairs)

    # Wiring -------------------------------------------------------------------------------

    def install(self, app: FastAPI, *, validate: bool = True, all_errors: bool = False) -> None:
        """Make ``app`` answer watchword's errors as ``application/problem+json`` (every
        :class:`WatchwordError`, the app's own included; with ``all_errors`` also FastAPI's
        own 404, 405 and 422, as watchword's API answers them) and, with ``validate``, run
        :meth:`validate` once the app's own lifespan has started (a failure stops the
        start), closing the guard at shutdown."""
        if all_errors:
            install_problem_handlers(app)
        app.add_exception_handler(WatchwordError, _problem)
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(started: Any) -> AsyncIterator[Any]:
            async with inner(started) as state:
                try:
                    if validate:
                        await self.validate()
                    yield state
                finally:
                    await self.aclose()

        app.router.lifespan_context = cast(
            Callable[[Any], AbstractAsyncContextManager[Any]], lifespan
        )

    async def aclose(self) -> None:
        """Close what the guard opened (the key-fetching client of a remote guard); the
        services or client it was given stay open."""
        try:
            await self._backend.aclose()
        finally:
            if self._http is not None:
                await self._http.aclose()

    # Plumbing -----------------------------------------------------------------------------

    def _credential(
        self, request: Request, bearer: HTTPAuthorizationCredentials | None
    ) -> Credential | None:
        if bearer is not None:
            return Credential(CredentialSource.BEARER, Secret(bearer.credentials))
        if self._session_cookie is None:
            return None
        cookie = request.cookies.get(self._session_cookie())
        return Credential(CredentialSource.COOKIE, Secret(cookie)) if cookie else None

    async def _authenticate(
        self, request: Request, bearer: HTTPAuthorizationCredentials | None
    ) -> Caller:
        credential = self._credential(request, bearer)
        if credential is None:
            cookie = ", or the session cookie" if self._session_cookie is not None else ""
            raise AuthenticationError(_NO_CREDENTIAL + cookie)
        if credential.source is CredentialSource.COOKIE and self._same_origin is not None:
            self._same_origin(request)
        address = request.client.host if request.client is not None else "unknown"
        attempt = await self._limiter.attempt(address)
        try:
            value = credential.value.reveal()
            if credential.source is CredentialSource.BEARER and looks_like_jwt(value):
                if not self._verifier:
                    raise AuthenticationError("this app accepts no bearer JWTs")
                verified = await self._verifier.verify(value)
                return await self._backend.caller_for_bearer(verified)
            return await self._backend.authenticate(credential)
        except AuthenticationError:
            await attempt.failed()
            raise

    async def _enforce(self, caller: Caller, resource_type: str, action: str, target: Any) -> None:
        pair = (resource_type, action)
        if pair not in self._valid:
            reasons = await self._backend.unknown_pairs([pair])
            if reasons:
                log.error("integration_policy_mismatch", detail="; ".join(reasons))
                raise ConfigurationError(
                    "a route requires what the policy does not define: " + "; ".join(reasons)
                )
            self._valid.add(pair)
        named = type_of(target)
        objects = self._objects()
        if named is None and objects is not None:
            try:
                named = objects.view(target).type
            except InvalidInput as exc:
                raise ConfigurationError(f"the engine refused the object: {exc.detail}") from exc
        if named is not None and named != resource_type:
            raise ConfigurationError(
                f"the object dependency gave a {named!r} where the route requires {resource_type!r}"
            )
        if not await self.allowed(caller, action, target):
            raise PermissionDenied(f"you may not {action} this {resource_type}")


def _path_param(request: Request, name: str | None) -> str | None:
    if name is None:
        return None
    value = request.path_params.get(name)
    if value is None or value == "":
        raise ConfigurationError(f"the route has no path parameter {name!r}")
    return str(value)


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    return error_response(request, cast(WatchwordError, exc))
