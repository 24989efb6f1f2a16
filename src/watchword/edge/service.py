"""Forward-auth decisions: who is calling, which route, what the policy engine says.

:meth:`EdgeService.verify` takes the original request (:mod:`.original`) and the caller's
principal (authenticated by the HTTP face exactly as every API request is) and returns a
:class:`Verdict`: 200 with the identity headers, 401 (no valid credential) or 403 (no
route, denied, or a request the edge will not guess about). Every header the edge owns is
in every verdict, empty when unknown, so a proxy that copies them overwrites what a client
sent. On a cache hit nothing here reads the database: the credential (token cache, session
cache), the compiled subject (RBAC cache, whose generation the change watch keeps) and the
route table (in memory, reloaded when its file changes) are all in the process.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, Counter, Histogram

from watchword.authz.engine import Engine
from watchword.authz.model import Object, TokenScope
from watchword.clock import Clock
from watchword.config import EdgeHeaders, EdgeSettings
from watchword.edge.assertion import AssertionSigner, Identity
from watchword.edge.original import OriginalRequest
from watchword.edge.routes import Allow, Match, RouteTable, canonical_path, parse_routes
from watchword.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidInput,
    NonCanonicalPath,
    UnknownRole,
    WatchwordError,
)
from watchword.observability.logging import get_logger
from watchword.principal import Principal, PrincipalKind
from watchword.rbac.service import RbacService

__all__ = ["EdgeMetrics", "EdgeService", "RouteSource", "Verdict", "header_value"]

log = get_logger("watchword.edge")

AccessTokenOf = Callable[[str], Any]  # session id -> awaitable of an upstream token


_HEADER_SAFE = re.compile(r"[\x20-\x24\x26-\x7e]*")  # printable ASCII but %


def header_value(value: str) -> str:
    """``value`` as a header value: printable ASCII kept, anything else (and ``%``)
    percent-encoded as UTF-8, so no value can break a header or smuggle a new one."""
    if _HEADER_SAFE.fullmatch(value):
        return value
    out: list[str] = []
    for ch in value:
        if 0x20 <= ord(ch) < 0x7F and ch != "%":
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Verdict:
    status: int  # 200, 401 or 403
    outcome: str  # allowed | unauthenticated | denied | no_route | non_canonical_path
    detail: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # tokens in there
    route: str | None = None
    explanation: Any = None  # the engine's explanation, when asked for

    @property
    def allowed(self) -> bool:
        return self.status == 200


class EdgeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "watchword_edge_decisions_total",
            "Forward-auth decisions by route and outcome.",
            ["route", "outcome"],
            registry=registry,
        )
        self.seconds = Histogram(
            "watchword_edge_verify_seconds",
            "Time to decide one forward-auth request (credential to verdict).",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5),
            registry=registry,
        )
        self.reloads = Counter(
            "watchword_edge_route_reloads_total",
            "Route table (re)loads by outcome (ok, rejected).",
            ["outcome"],
            registry=registry,
        )
        self._decided: dict[tuple[str, str], Any] = {}  # route names: the table's, bounded

    def decided(self, route: str, outcome: str) -> None:
        child = self._decided.get((route, outcome))
        if child is None:
            child = self._decided[(route, outcome)] = self.decisions.labels(route, outcome)
        child.inc()


def load_table(settings: EdgeSettings) -> RouteTable:
    """The configured table; :class:`ConfigurationError` naming the file and field."""
    if settings.routes_file is None:
        where = "edge.routes"
        document: object = {"routes": settings.routes}
    else:
        where = settings.routes_file
        path = Path(settings.routes_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"edge.routes_file {where}: cannot be read ({exc.strerror})"
            ) from None
        try:
            document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"edge.routes_file {where}: not valid: {exc}") from None
    try:
        return parse_routes(document)
    except InvalidInput as exc:
        raise ConfigurationError(f"{where} {exc.pointer or ''}: {exc.detail}") from None


class RouteSource:
    """The active route table; the file is checked every ``reload_every`` and a changed one
    reloaded, a bad one refused (logged, counted, ``last_error``) with the active one kept."""

    def __init__(
        self, settings: EdgeSettings, *, clock: Clock, metrics: EdgeMetrics | None = None
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self.table = load_table(settings)
        self._stamp = self._file_stamp()
        self._checked = clock.monotonic()
        self.last_error: str | None = None
        self.loaded_at = clock.now()
        self.can_sign = True  # EdgeService says whether it has a signer

    def _file_stamp(self) -> tuple[int, int] | None:
        if self._settings.routes_file is None:
            return None
        try:
            st = Path(self._settings.routes_file).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> RouteTable:
        if self._settings.routes_file is None:
            return self.table
        now = self._clock.monotonic()
        if now - self._checked < self._settings.reload_every.total_seconds():
            return self.table
        self._checked = now
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            self.reload()
        return self.table

    def reload(self) -> bool:
        try:
            table = load_table(self._settings)
            if table.wants_assertions and not self.can_sign:
                raise ConfigurationError(
                    "routes ask for signed assertions: set WATCHWORD_SECRET_KEY (the signing "
                    "key is derived from it)"
                )
        except ConfigurationError as exc:
            self.last_error = exc.detail
            log.error("edge_routes_rejected", detail=exc.detail)
            if self._metrics is not None:
                self._metrics.reloads.labels(outcome="rejected").inc()
            return False
        self.table = table
        self.last_error = None
        self.loaded_at = self._clock.now()
        log.info("edge_routes_loaded", routes=len(table.routes))
        if self._metrics is not None:
            self._metrics.reloads.labels(outcome="ok").inc()
        return True

    def status(self) -> dict[str, object]:
        out: dict[str, object] = {
            "routes": len(self.table.routes),
            "loaded_at": self.loaded_at.isoformat(),
        }
        if self.last_error is not None:
            out["last_error"] = self.last_error
        return out


class EdgeService:
    def __init__(
        self,
        *,
        routes: RouteSource,
        rbac: RbacService,
        engine: Engine,
        headers: EdgeHeaders,
        signer: AssertionSigner | None,
        access_token_of: AccessTokenOf,
        metrics: EdgeMetrics | None = None,
        denial_log_rate: float = 0.0,
    ) -> None:
        self.routes = routes
        self._rbac = rbac
        self._engine = engine
        self._names = headers
        self.signer = signer
        routes.can_sign = signer is not None
        self._access_token_of = access_token_of
        self._metrics = metrics
        self._denial_log_rate = denial_log_rate
        self._blank = dict.fromkeys(headers.names(), "")
        if signer is None and routes.table.wants_assertions:
            raise ConfigurationError(
                "edge routes ask for signed assertions: set WATCHWORD_SECRET_KEY (the "
                "signing key is derived from it)"
            )

    def blank_headers(self) -> dict[str, str]:
        return dict(self._blank)

    async def verify(
        self,
        original: OriginalRequest,
        principal: Principal | None,
        *,
        credential_error: WatchwordError | None = None,
        explain: bool = False,
    ) -> Verdict:
        start = time.perf_counter()
        verdict = await self._decide(original, principal, credential_error, explain=explain)
        if self._metrics is not None:
            self._metrics.seconds.observe(time.perf_counter() - start)
            self._metrics.decided(verdict.route or "-", verdict.outcome)
        if (
            verdict.status == 403
            and self._denial_log_rate > 0
            and random.random() < self._denial_log_rate  # noqa: S311 - sampling, not security
        ):
            log.info(
                "edge_denied",
                route=verdict.route,
                outcome=verdict.outcome,
                method=original.method,
                host=original.host,
                path=original.uri.split("?", 1)[0],
                issuer=principal.issuer if principal else None,
                subject=principal.subject if principal else None,
                detail=verdict.detail,
            )
        return verdict

    async def _decide(
        self,
        original: OriginalRequest,
        principal: Principal | None,
        credential_error: WatchwordError | None,
        *,
        explain: bool,
    ) -> Verdict:
        blank = self.blank_headers()
        try:
            path = canonical_path(original.uri)
        except NonCanonicalPath as exc:
            return Verdict(403, "non_canonical_path", exc.detail, blank)
        match = self.routes.current().match(host=original.host, path=path, method=original.method)
        if match is None:
            return Verdict(
                403,
                "no_route",
                f"no route matches {original.method} {original.host}{path} (the table "
                "denies what it does not name)",
                blank,
            )
        name = match.route.name
        if not match.method_allowed:
            return Verdict(
                403,
                "method_not_allowed",
                f"route {name!r} does not allow {original.method}",
                blank,
                name,
            )
        if principal is None:
            if match.route.allow is Allow.ANONYMOUS:
                return Verdict(200, "allowed", "anonymous route", blank, name)
            detail = credential_error.detail if credential_error else "no credential"
            return Verdict(401, "unauthenticated", detail, blank, name)
        if match.route.allow is not Allow.POLICY or principal.superuser:
            return await self._allowed(principal, match, f"{match.route.allow.value} route")
        return await self._policy(principal, match, explain=explain)

    async def _allowed(
        self,
        principal: Principal,
        match: Match,
        detail: str,
        *,
        resolved: Any = None,
        explanation: Any = None,
    ) -> Verdict:
        """200 with the identity headers, unless what a header needs cannot be had: the
        session ended (401) or its provider cannot refresh the token now (403; nginx
        accepts no other status from auth_request)."""
        name = match.route.name
        try:
            headers = await self._identity_headers(principal, match, resolved=resolved)
        except AuthenticationError as exc:
            return Verdict(401, "unauthenticated", exc.detail, self.blank_headers(), name)
        except WatchwordError as exc:
            log.warning("edge_upstream_token_unavailable", route=name, code=exc.code)
            return Verdict(
                403,
                "upstream_token_unavailable",
                f"the upstream access token cannot be had now: {exc.detail}",
                self.blank_headers(),
                name,
            )
        return Verdict(200, "allowed", detail, headers, name, explanation)

    async def _policy(self, principal: Principal, match: Match, *, explain: bool) -> Verdict:
        name = match.route.name
        if principal.issuer is None or principal.subject is None:
            return Verdict(
                403, "denied", "this credential names no subject", self.blank_headers(), name
            )
        scope = None if principal.scopes is None else TokenScope(frozenset(principal.scopes))
        resolved = await self._rbac.resolve(
            principal.issuer, principal.subject, principal.claims, scope=scope
        )
        compiled = self._engine.refresh(resolved.compiled)
        route = match.route
        assert route.resource is not None  # noqa: S101 - a policy route has both (parsed)
        assert match.action is not None  # noqa: S101
        obj = Object(
            route.resource,
            match.object.get("id", ""),
            org_id=match.object.get("organization"),
            project_id=match.object.get("project"),
        )
        try:
            explanation = self._engine.explain(compiled, match.action, obj) if explain else None
            allowed = self._engine.check(compiled, match.action, obj).allowed
        except UnknownRole as exc:
            # The caller holds a role the policy no longer has (deleted meanwhile): deny.
            log.error("edge_subject_invalid", route=name, code=exc.code, detail=exc.detail)
            return Verdict(
                403,
                "subject_invalid",
                f"the caller holds a role the policy does not have: {exc.detail}",
                self.blank_headers(),
                name,
            )
        except InvalidInput as exc:
            # The route names a resource type or action the current policy does not have
            # (the policy changed after the table was written): deny, loudly, never a 5xx.
            log.error("edge_route_invalid", route=name, code=exc.code, detail=exc.detail)
            return Verdict(
                403,
                "route_invalid",
                f"route {name!r} asks the policy something it does not know: {exc.detail}",
                self.blank_headers(),
                name,
            )
        if not allowed:
            return Verdict(
                403,
                "denied",
                f"{match.action} on {route.resource} {obj.id!r} is not allowed",
                self.blank_headers(),
                name,
                explanation,
            )
        return await self._allowed(
            principal, match, "the policy allows it", resolved=resolved, explanation=explanation
        )

    async def _identity_headers(
        self, principal: Principal, match: Match, *, resolved: Any = None
    ) -> dict[str, str]:
        names = self._names
        headers = self.blank_headers()
        if principal.issuer is None or principal.subject is None:
            return headers  # an admin key: allowed, but nobody to name
        if resolved is None:
            resolved = await self._rbac.resolve(
                principal.issuer, principal.subject, principal.claims
            )
        email = principal.claims.get("email")
        groups = sorted(resolved.resolution.subject.groups)
        organizations = sorted(resolved.resolution.member_orgs)
        headers[names.subject] = header_value(principal.subject)
        headers[names.issuer] = header_value(principal.issuer)
        headers[names.email] = header_value(email) if isinstance(email, str) else ""
        headers[names.groups] = ",".join(header_value(g) for g in groups)
        headers[names.organizations] = ",".join(header_value(o) for o in organizations)
        route = match.route
        if route.access_token and principal.kind is PrincipalKind.SESSION:
            token = await self._access_token_of(principal.id)
            headers[names.access_token] = token.token.reveal()
        if route.audience is not None and self.signer is not None:
            identity = Identity(
                principal.issuer,
                principal.subject,
                email if isinstance(email, str) else None,
                tuple(groups),
                tuple(organizations),
            )
            headers[names.assertion] = self.signer.assertion(identity, route.audience)
        return headers
