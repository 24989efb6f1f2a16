"""The composition root: every long-lived service of a process, built once, in dependency order.

A :class:`~watchword.runtime.Runtime` holds the shared I/O handles (settings, database
engine, Redis client, metrics registry, clock). :meth:`Services.build` reads the settings
here, and only here, and hands each service exactly what it uses::

    locks         ← engine or Redis, lock settings, clock, registry
    policy_engine ← registry, clock, authz settings
    rbac          ← store context (engine, clock, issuer), policy_engine, RBAC settings
    integrations  ← engine, clock, token metrics, plaintext cache (Redis, none or memory),
                    anchor seal (a key derived from secret_key, if set)
    tokens        ← engine, clock, token metrics, verify cache (Redis layer only with a
                    key derived from secret_key), integrations.forget (a hook)
    janitor       ← engine, clock, locks, token metrics, retention
    sessions      ← engine, clock, sealer (sessions.keys or a key derived from secret_key),
                    session settings, session metrics
    refresher     ← engine, clock, locks, sessions, the sign-in clients, refresher settings
    signin        ← one OidcClient per oidc.providers entry (shared httpx client), sessions,
                    issuer_url (redirect URIs), return_to rule, oidc settings
    authenticators← session cookie (sessions), admin keys (engine), API tokens (tokens)
                    [first that accepts wins]
    feed          ← Redis pub/sub, else PostgreSQL LISTEN/NOTIFY, else none: ended sessions
                    leave every process's cache at once (the session_feed job listens)

No service takes the runtime or the settings object itself. The HTTP app, the CLI and the
background jobs (:mod:`watchword.jobs`) all work through one :class:`Services`; tests build
as many as they like (one per simulated replica).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword.authz.decisionlog import DecisionEvent, DecisionLog
from watchword.authz.engine import Engine
from watchword.authz.metrics import AuthzMetrics
from watchword.authz.model import Policy, Registry
from watchword.bootstrap import AdminKeyAuthenticator
from watchword.clock import Clock
from watchword.config import OidcProviderSettings, Settings
from watchword.edge.assertion import AssertionSigner, signing_key_from_seed
from watchword.edge.service import EdgeMetrics, EdgeService, RouteSource
from watchword.errors import AlreadyExists, ConfigurationError, VersionConflict
from watchword.federation.client import OidcClient
from watchword.federation.provider import UpstreamProvider
from watchword.federation.returnto import ReturnTo
from watchword.locks import Locks, database_or_redis_locks
from watchword.observability.logging import get_logger
from watchword.principal import Authenticator, Credential, Principal, authenticate
from watchword.rbac.service import RbacService
from watchword.rbac.store import accounts as rbac_accounts
from watchword.rbac.store.accounts import delete_service_account
from watchword.rbac.store.context import StoreContext
from watchword.runtime import Runtime
from watchword.secret import Secret
from watchword.sessions.background import BackgroundRefresher
from watchword.sessions.refresh import RefreshMetrics, SessionRefresher
from watchword.sessions.schedule import RefreshPolicy
from watchword.sessions.sealing import NO_SEALING_KEY, Sealer
from watchword.sessions.service import SessionAuthenticator, SessionMetrics, SessionService
from watchword.sessions.signin import OrganizationsOf, SigninService
from watchword.storage.changes import watch_for
from watchword.storage.feed import ChangeFeed, change_feed
from watchword.tokens.anchor import AnchorSeal
from watchword.tokens.authn import ApiTokenAuthenticator
from watchword.tokens.cache import VerifyCache
from watchword.tokens.integration import IntegrationRotator, plaintext_cache
from watchword.tokens.janitor import TokenJanitor
from watchword.tokens.keyring import KeyPurpose, derive_purpose_key, usable_secret_key
from watchword.tokens.metrics import TokenMetrics
from watchword.tokens.model import Owner, TokenRecord
from watchword.tokens.service import TokenService

__all__ = ["SESSIONS_CHANGED", "SESSIONS_ENDED", "Services", "build_policy_engine"]

SESSIONS_ENDED = "sessions_ended"
"""The change-feed channel of ended sessions (ids)."""
SESSIONS_CHANGED = "sessions_changed"
"""The change-feed channel of new sessions (ids): wakes the background refreshers."""

log = get_logger("watchword.services")


def build_policy_engine(settings: Settings, runtime: Runtime) -> Engine:
    """The process's policy engine: metrics on the runtime's registry, checks observed one in
    ``authz_observe_every``, decisions logged (structlog, event ``authz.decision``) at
    ``decision_log_sample_rate``. The RBAC service installs the stored policy in it."""
    decision_log = None
    if settings.authz.decision_log_sample_rate > 0:
        decisions = get_logger("watchword.authz.decisions")

        def sink(event: DecisionEvent) -> None:
            fields = event.to_dict()
            decisions.info(str(fields.pop("event")), **fields)

        decision_log = DecisionLog(sink, rate=settings.authz.decision_log_sample_rate)
    return Engine(
        Policy(Registry(), {}, version=0),
        metrics=AuthzMetrics(runtime.registry),
        observe_every=settings.authz.observe_every,
        decision_log=decision_log,
        clock=runtime.clock,
    )


def refresh_policy(settings: Settings) -> RefreshPolicy:
    part = settings.refresher
    return RefreshPolicy(
        grace=part.grace,
        cool_off=part.cool_off,
        backoff_initial=part.backoff_initial,
        backoff_max=part.backoff_max,
        userinfo_interval=part.userinfo_interval,
    )


def _build_signin(
    runtime: Runtime, organizations_of: OrganizationsOf
) -> tuple[SessionService, SigninService, httpx.AsyncClient]:
    settings = runtime.settings
    configured = [(key.id, Secret(key.key)) for key in settings.sessions.keys]
    sealer: Sealer | None = None
    if configured or usable_secret_key(settings.secret_key):
        sealer = Sealer.from_settings(configured, settings.secret_key)
    elif settings.oidc.providers:
        raise ConfigurationError(NO_SEALING_KEY)  # providers configured, no key
    sessions = SessionService(
        runtime.engine,
        runtime.clock,
        sealer=sealer,
        absolute_timeout=settings.sessions.absolute_timeout,
        idle_timeout=settings.sessions.idle_timeout,
        cache_ttl=settings.sessions.cache_ttl,
        metrics=SessionMetrics(runtime.registry),
        policy=refresh_policy(settings),
    )
    # One client for every provider call: TLS verified, no redirects followed, pooled.
    http = httpx.AsyncClient(
        follow_redirects=False,
        timeout=settings.oidc.http_timeout.total_seconds(),
        headers={"User-Agent": "watchword"},
    )
    clients = []
    for provider in settings.oidc.providers:
        upstream = UpstreamProvider(
            provider,
            http=http,
            clock=runtime.clock,
            timeout=settings.oidc.http_timeout,
            jwks_refresh_interval=settings.oidc.jwks_refresh_interval,
            allow_insecure_http=settings.oidc.allow_insecure_http,
        )
        try:
            clients.append(OidcClient(upstream, http=http, clock=runtime.clock))
        except ValueError as exc:
            raise ConfigurationError(f"oidc.providers ({provider.name}): {exc}") from None
    signin = SigninService(
        clients=clients,
        sessions=sessions,
        engine=runtime.engine,
        clock=runtime.clock,
        public_url=settings.issuer_url,
        return_to=ReturnTo(settings.issuer_url, settings.oidc.return_to_origins),
        signin_timeout=settings.oidc.signin_timeout,
        leeway=settings.oidc.leeway,
        registry=runtime.registry,
        organizations_of=organizations_of,
        authz_claim=settings.rbac.authz_claim,
    )
    return sessions, signin, http


def _build_edge(
    runtime: Runtime, rbac: RbacService, policy_engine: Engine, refresher: SessionRefresher
) -> EdgeService:
    settings = runtime.settings
    metrics = EdgeMetrics(runtime.registry)
    signer = None
    if usable_secret_key(settings.secret_key):
        seed = derive_purpose_key(settings.secret_key, KeyPurpose.EDGE_ASSERTION)
        signer = AssertionSigner(
            signing_key_from_seed(seed),
            issuer=settings.issuer_url,
            clock=runtime.clock,
            lifetime=settings.edge.assertion_lifetime,
        )
    return EdgeService(
        routes=RouteSource(settings.edge, clock=runtime.clock, metrics=metrics),
        rbac=rbac,
        engine=policy_engine,
        headers=settings.edge.headers,
        signer=signer,
        access_token_of=refresher.access_token,
        metrics=metrics,
        denial_log_rate=settings.edge.denial_log_rate,
    )


@dataclass(slots=True)
class Services:
    """Every service of one process, wired. Close with :meth:`aclose` (the runtime's owner
    closes the runtime)."""

    runtime: Runtime
    locks: Locks
    policy_engine: Engine
    rbac: RbacService
    tokens: TokenService
    integrations: IntegrationRotator
    janitor: TokenJanitor
    sessions: SessionService
    signin: SigninService
    refresher: SessionRefresher
    background: BackgroundRefresher
    authenticators: tuple[Authenticator, ...]
    http: httpx.AsyncClient
    feed: ChangeFeed
    edge: EdgeService

    @classmethod
    def build(cls, runtime: Runtime) -> Services:
        settings = runtime.settings
        engine, clock, redis = runtime.engine, runtime.clock, runtime.redis
        locks = database_or_redis_locks(
            engine,
            redis=redis,
            redis_prefix=settings.redis.prefix,
            durable_grants=settings.locks.durable_grants,
            clock=clock,
            registry=runtime.registry,
        )
        watch_for(engine).configure(clock=clock, staleness=settings.database.change_staleness)
        policy_engine = build_policy_engine(settings, runtime)
        rbac = RbacService(
            StoreContext(engine, clock, settings.issuer_url),
            authz_claim=settings.rbac.authz_claim,
            ttl=settings.rbac.acl_cache_ttl,
            clock=clock,
            registry=runtime.registry,
            policy_engine=policy_engine,
        )
        token_metrics = TokenMetrics(runtime.registry)
        verify_key = anchor_seal = None
        if usable_secret_key(settings.secret_key):
            verify_key = derive_purpose_key(settings.secret_key, KeyPurpose.VERIFY_CACHE)
            anchor_seal = AnchorSeal(
                derive_purpose_key(settings.secret_key, KeyPurpose.ROTATION_ANCHOR)
            )
        elif engine.dialect.name == "postgresql":
            # Integration tokens then rotate per process (each once per cycle), and a
            # revocation clears only the revoking process's rotation cache at once: that
            # matters with several replicas, so only where replicas are possible (SQLite is
            # one host, and every CLI command would otherwise repeat the warning).
            log.warning(
                "token_rotation_per_process",
                reason="WATCHWORD_SECRET_KEY is not set (or shorter than 32 characters)",
            )
        if verify_key is None and redis is not None:
            # Redis entries carry authority; unsigned they would let anyone who can write
            # to Redis act as anyone. Safe, not fatal: tokens verify from the database.
            log.warning(
                "token_verify_cache_redis_disabled",
                reason="WATCHWORD_SECRET_KEY is not set (or shorter than 32 characters)",
            )
        integrations = IntegrationRotator(
            engine,
            clock,
            cache=plaintext_cache(
                redis, prefix=settings.redis.prefix, secret_key=settings.secret_key
            ),
            metrics=token_metrics,
            cache_ttl=settings.tokens.rotation_cache_ttl,
            grace=settings.tokens.grace_period,
            seal=anchor_seal,
        )
        tokens = TokenService(
            engine,
            clock,
            cache=VerifyCache(
                clock,
                ttl_s=settings.tokens.verify_cache_ttl.total_seconds(),
                redis=redis,
                redis_prefix=settings.redis.prefix,
                signing_key=verify_key,
                metrics=token_metrics,
            ),
            metrics=token_metrics,
            grace_period=settings.tokens.grace_period,
            rotation_cache_ttl=settings.tokens.rotation_cache_ttl,
            forget_rotation=integrations.forget,
        )
        janitor = TokenJanitor(
            engine,
            clock,
            locks=locks,
            metrics=token_metrics,
            retention=settings.tokens.retention,
            every=settings.tokens.janitor_every,
        )

        async def organizations_of(
            issuer: str, subject: str, claims: Mapping[str, Any]
        ) -> list[str]:
            document = await rbac.acl(issuer, subject, claims)
            organizations = cast(list[dict[str, Any]], document.get("organizations") or [])
            return [str(org["id"]) for org in organizations]

        sessions, signin, http = _build_signin(runtime, organizations_of)
        feed = change_feed(engine, redis, prefix=settings.redis.prefix)

        async def publish_ended(ids: Sequence[str]) -> None:
            await feed.publish(SESSIONS_ENDED, ids)

        sessions.on_ended(publish_ended)
        refresher = SessionRefresher(
            engine,
            clock,
            sessions=sessions,
            sealer=sessions.sealer_or_none,
            clients=signin.clients,
            policy=sessions.policy,
            call_timeout=settings.refresher.call_timeout,
            leeway=settings.oidc.leeway,
            metrics=RefreshMetrics(runtime.registry),
            authz_claim=settings.rbac.authz_claim,
        )
        background = BackgroundRefresher(
            engine,
            clock,
            locks=locks,
            refresher=refresher,
            shards=settings.refresher.shards,
            lease=settings.refresher.lease,
            pool_size=settings.refresher.pool_size,
            per_provider_limit=settings.refresher.per_provider_limit,
            poll_interval=settings.refresher.poll_interval,
            registry=runtime.registry,
        )

        async def publish_created(ids: Sequence[str]) -> None:
            background.wake.set()  # this process at once; the others through the feed
            await feed.publish(SESSIONS_CHANGED, ids)

        sessions.on_created(publish_created)
        edge = _build_edge(runtime, rbac, policy_engine, refresher)
        authenticators: tuple[Authenticator, ...] = (
            SessionAuthenticator(sessions),  # cookies only
            AdminKeyAuthenticator(engine, max_age=settings.tokens.verify_cache_ttl),
            ApiTokenAuthenticator(tokens),  # last: it takes any other bearer credential
        )
        return cls(
            runtime=runtime,
            locks=locks,
            policy_engine=policy_engine,
            rbac=rbac,
            tokens=tokens,
            integrations=integrations,
            janitor=janitor,
            sessions=sessions,
            signin=signin,
            refresher=refresher,
            background=background,
            authenticators=authenticators,
            http=http,
            feed=feed,
            edge=edge,
        )

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: Settings, *, clock: Clock | None = None
    ) -> AsyncIterator[Services]:
        """A runtime and its services for the duration of a block (CLI commands, scripts)."""
        runtime = Runtime.create(settings, clock=clock)
        services = cls.build(runtime)
        try:
            yield services
        finally:
            await services.aclose()
            await runtime.close()

    @property
    def store(self) -> StoreContext:
        """What the RBAC repositories need (engine, clock, local issuer)."""
        return self.rbac.ctx

    async def authenticate(self, credential: Credential) -> Principal:
        """Who presented ``credential`` (or an ``AuthenticationError``)."""
        return await authenticate(self.authenticators, credential)

    async def delete_service_account(self, sa_id: str, *, if_match: int | None) -> None:
        """Delete a service account with everything that made it able to act: its group
        memberships and role bindings (RBAC) and its API tokens (revoked), in one transaction;
        then the revoked tokens leave every cache."""
        revoked: list[TokenRecord] = []

        async def revoke_tokens(conn: AsyncConnection, issuer: str, subject: str) -> None:
            revoked.extend(await self.tokens.revoke_owned_in(conn, Owner(issuer, subject)))

        await delete_service_account(self.store, sa_id, if_match=if_match, on_deleted=revoke_tokens)
        await self.tokens.forget_revoked(revoked)

    async def aclose(self) -> None:
        """Release what the services hold (connections, listeners), newest first; one that
        fails to close does not keep the others open."""
        try:
            await self.rbac.aclose()
        finally:
            try:
                await self.locks.aclose()
            finally:
                await self.http.aclose()

    async def sync_provider_issuers(self) -> None:
        """Make each sign-in provider's issuer the RBAC issuer record with the provider's
        claim mapping (created, or updated where it differs): one source of truth per issuer,
        so ``/v1/acl`` for (issuer, subject) is what a person signed in through it gets.
        Replicas starting together may race on the record: a conflict re-reads and retries."""
        for provider in self.runtime.settings.oidc.providers:
            for attempt in range(3):
                try:
                    await self._sync_issuer(provider)
                    break
                except (AlreadyExists, VersionConflict):
                    if attempt == 2:
                        raise

    async def _sync_issuer(self, provider: OidcProviderSettings) -> None:
        authz_claim = provider.authz_claim or self.runtime.settings.rbac.authz_claim
        async with self.runtime.engine.connect() as conn:
            record = await rbac_accounts.get_issuer_by_url(conn, provider.issuer)
        if record is None:
            await rbac_accounts.create_issuer(
                self.store,
                url=provider.issuer,
                audiences=[provider.client_id],
                subject_claim=provider.subject_claim,
                groups_claim=provider.groups_claim,
                authz_claim=authz_claim,
                membership_from_claims=provider.membership_from_claims,
            )
            log.info("provider_issuer_created", provider=provider.name)
            return
        current = (
            record.subject_claim,
            record.groups_claim,
            record.authz_claim,
            record.membership_from_claims,
        )
        wanted = (
            provider.subject_claim,
            provider.groups_claim,
            authz_claim,
            provider.membership_from_claims,
        )
        if current == wanted:
            return
        await rbac_accounts.update_issuer(
            self.store,
            record.id,
            if_match=record.stamp.version,
            subject_claim=provider.subject_claim,
            groups_claim=provider.groups_claim,
            authz_claim=authz_claim,
            membership_from_claims=provider.membership_from_claims,
            clear_groups_claim=provider.groups_claim is None,
        )
        # An administrator's edits of this record through /v1/issuers do not survive: the
        # provider's settings are the one source of truth for its issuer (docs/signin.md).
        log.warning(
            "provider_issuer_updated",
            provider=provider.name,
            replaced=dict(
                zip(
                    ("subject_claim", "groups_claim", "authz_claim", "membership_from_claims"),
                    current,
                    strict=True,
                )
            ),
        )
