"""The RBAC service of one runtime: current policy, subjects and ACLs, cached.

Invariants this module owns:

- The policy (resource types + roles) is loaded from storage and installed in an authz
  :class:`~watchword.authz.engine.Engine` with the RBAC generation as its version; it is
  reloaded when the generation read for a request differs. A policy that fails to build
  (rows edited behind watchword's back) is logged and the active one stays active.
- ACL/subject cache entries are keyed by (issuer, subject, claims digest, scope) and hold
  the generation they were computed at. Every lookup first asks for the current generation,
  which is read from the database only when the change watch (:mod:`watchword.storage.changes`)
  says it may have moved: a write through watchword in this process (at once), one on
  another replica (its ``NOTIFY``, heard by the change listener), or, with no listener
  (SQLite), ``database.change_staleness`` after the last read. A request that finds
  everything cached reads nothing. Entries also expire after ``settings.rbac.acl_cache_ttl``:
  the bound on staleness for changes that bypass the generation (rows edited by hand).
- The compiled subject in an entry is the one checks, filters and the ACL document use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watchword.authz.compile import CompiledSubject
from watchword.authz.engine import Engine
from watchword.authz.model import Policy, Registry, Subject, TokenScope
from watchword.authz.parse import parse_subject
from watchword.clock import Clock
from watchword.errors import InvalidInput
from watchword.observability.logging import get_logger
from watchword.rbac.acl import acl_document
from watchword.rbac.claims import IssuerTrust, claims_digest, identity_from_claims
from watchword.rbac.model import ServiceAccount
from watchword.rbac.store.accounts import get_service_account
from watchword.rbac.store.context import StoreContext
from watchword.rbac.store.facts import issuer_trust, load_facts
from watchword.rbac.store.generation import read_generation
from watchword.rbac.store.roles import load_policy
from watchword.rbac.subject import Resolution, resolve_subject
from watchword.storage.changes import RBAC, Mark, watch_for

__all__ = [
    "CACHE_SIZE",
    "RbacService",
    "Resolved",
    "scope_key",
]

CACHE_SIZE = 65_536
_DOCUMENT_CACHE_SIZE = 4096
_DOCUMENT_KEY_LIMIT = 4096  # characters of canonical JSON; larger documents are not kept
log = get_logger("watchword.rbac")
_tracer = trace.get_tracer("watchword.rbac")

CacheKey = tuple[str, str, str, tuple[object, ...] | None]


def scope_key(scope: TokenScope | None) -> tuple[object, ...] | None:
    if scope is None:
        return None
    return (tuple(sorted(scope.names)), tuple(sorted(scope.allow_list)))


@dataclass(slots=True)
class Resolved:
    """A cached subject: its resolution, compiled subject and ACL documents by org scope."""

    generation: int
    stored_at: float
    resolution: Resolution
    compiled: CompiledSubject
    documents: dict[str | None, dict[str, object]] = field(default_factory=dict)

    def document(self, organization_id: str | None) -> dict[str, object]:
        doc = self.documents.get(organization_id)
        if doc is None:
            doc = acl_document(
                self.compiled, self.resolution, organization_id=organization_id
            ).to_dict()
            self.documents[organization_id] = doc
        return doc


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.lookups = Counter(
            "watchword_rbac_subject_cache_lookups",
            "Subject/ACL cache lookups by result (hit, miss, stale).",
            ["result"],
            registry=registry,
        )
        self.resolve_seconds = Histogram(
            "watchword_rbac_resolve_seconds",
            "Time to load facts and compile one subject (cache misses).",
            registry=registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.policy_reloads = Counter(
            "watchword_rbac_policy_reloads",
            "Policy reloads by outcome (ok, rejected).",
            ["outcome"],
            registry=registry,
        )


class _GenerationReader:
    """The per-request generation read, on one held autocommit connection (PostgreSQL).

    A pooled checkout costs a pre-ping round trip plus transaction bookkeeping, several
    times the read itself (see ``benchmarks/rbac``). Reads are serialized on the held
    connection (each is one indexed primary-key read), and each request still does its own
    read after it arrived, so the invalidation guarantee is unchanged. A failed read drops
    the connection and retries once on a fresh one. SQLite reads through the pool.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._held = engine.dialect.name == "postgresql"
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()

    async def read(self) -> int:
        if not self._held:
            return await read_generation(self._engine)
        async with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None:
                        conn = await self._engine.connect()
                        self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    return await read_generation(self._conn)
                except (DBAPIError, OSError):
                    await self._discard()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(DBAPIError, OSError):
                await conn.invalidate()

    async def aclose(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()


class RbacService:
    def __init__(
        self,
        ctx: StoreContext,
        *,
        authz_claim: str,
        ttl: timedelta,
        clock: Clock,
        registry: CollectorRegistry | None = None,
        cache_size: int = CACHE_SIZE,
        policy_engine: Engine | None = None,
    ) -> None:
        self.ctx = ctx
        self.authz_claim = authz_claim
        self.ttl = ttl.total_seconds()
        self.clock = clock
        self.policy_engine = policy_engine or Engine(Policy(Registry(), {}, version=0))
        self._reader = _GenerationReader(ctx.engine)
        self._watch = watch_for(ctx.engine)
        self._generation = -1
        self._generation_mark: Mark | None = None  # when self._generation was read
        self._generation_lock = asyncio.Lock()
        self._trust: dict[str, IssuerTrust] = {}  # by issuer URL, for self._generation
        self._cache: OrderedDict[CacheKey, Resolved] = OrderedDict()
        self._cache_size = cache_size
        self._documents: OrderedDict[str, CompiledSubject] = OrderedDict()
        self._metrics = _Metrics(registry) if registry is not None else None

    # Policy ------------------------------------------------------------------------------

    async def generation(self) -> int:
        """The current generation, with the engine holding its policy: the one known, while
        the change watch says nothing may have changed since it was read; else read now."""
        if self._watch.fresh(RBAC, self._generation_mark, max_age=self.ttl):
            return self._generation
        async with self._generation_lock:  # one read for every request that waits here
            if self._watch.fresh(RBAC, self._generation_mark, max_age=self.ttl):
                return self._generation
            mark = self._watch.mark(RBAC)  # before the read: a change during it is not lost
            current = await self._load_generation()
            if current == self._generation:
                self._generation_mark = mark
            return current

    async def _load_generation(self) -> int:
        current = await self._reader.read()
        if current == self._generation:
            return current
        async with self.ctx.engine.connect() as conn:
            try:
                # The policy is read with the generation it belongs to, in one transaction.
                current = await read_generation(conn)
                policy = await load_policy(conn)
            except InvalidInput as exc:
                log.error("rbac_policy_rejected", code=exc.code, detail=exc.detail)
                if self._metrics is not None:
                    self._metrics.policy_reloads.labels(outcome="rejected").inc()
                if self._generation < 0:
                    raise
                return current
        if policy.version > self.policy_engine.version:
            self.policy_engine.replace_policy(policy)
        self._generation = current
        self._trust = {}
        if self._metrics is not None:
            self._metrics.policy_reloads.labels(outcome="ok").inc()
        return current

    @property
    def policy(self) -> Policy:
        return self.policy_engine.policy

    async def compile_subject_document(
        self, document: object, *, pointer: str = "/subject"
    ) -> CompiledSubject:
        """An inline subject document, parsed and compiled against the current policy,
        memoized by the document's canonical JSON (a bounded LRU of small documents; a
        policy change recompiles an entry on its next use). Callers that ask about the
        same subjects again (a service checking its users' requests) skip parse and compile."""
        await self.generation()
        if _memberships(document) > _DOCUMENT_CACHE_MEMBERSHIPS:
            # Its key would cost more than parsing and compiling, which are O(1) (lazy).
            return self.policy_engine.compile(parse_subject(document, pointer))
        key = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
        hit = self._documents.get(key)
        if hit is not None:
            fresh = self.policy_engine.refresh(hit)
            self._documents[key] = fresh
            self._documents.move_to_end(key)
            return fresh
        compiled = self.policy_engine.compile(parse_subject(document, pointer))
        if len(key) <= _DOCUMENT_KEY_LIMIT:
            self._documents[key] = compiled
            while len(self._documents) > _DOCUMENT_CACHE_SIZE:
                self._documents.popitem(last=False)
        return compiled

    async def compile_document(self, subject: Subject) -> CompiledSubject:
        """Compile a subject given as a document against the stored policy of now (the
        generation is read first, so a policy changed on another replica is in place)."""
        await self.generation()
        return self.policy_engine.compile(subject)

    async def compiled_for(
        self,
        issuer: str,
        subject: str | None,
        claims: Mapping[str, object] | None = None,
        *,
        scope: TokenScope | None = None,
    ) -> CompiledSubject:
        """The compiled subject of (issuer, subject) for checks against the current policy."""
        resolved = await self.resolve(issuer, subject, claims, scope=scope)
        return self.policy_engine.refresh(resolved.compiled)

    # Subjects ----------------------------------------------------------------------------

    async def resolve(
        self,
        issuer: str,
        subject: str | None,
        claims: Mapping[str, object] | None = None,
        *,
        scope: TokenScope | None = None,
    ) -> Resolved:
        """The resolved, compiled subject (cached; see the module invariants)."""
        claims = claims or {}
        generation = await self.generation()
        trust = self._trust.get(issuer) if generation == self._generation else None
        if trust is None:
            async with self.ctx.engine.connect() as conn:
                trust = await issuer_trust(
                    conn,
                    issuer,
                    local_issuer=self.ctx.issuer_url,
                    default_authz_claim=self.authz_claim,
                )
            if generation == self._generation:
                self._trust[issuer] = trust
        key: CacheKey = (issuer, subject or "", claims_digest(claims, trust), scope_key(scope))
        now = self.clock.monotonic()
        hit = self._cache.get(key)
        if hit is not None:
            if hit.generation == generation and now - hit.stored_at < self.ttl:
                self._cache.move_to_end(key)
                self._count("hit")
                return hit
            self._count("stale")
        else:
            self._count("miss")
        start = time.perf_counter()
        with _tracer.start_as_current_span("rbac.resolve") as span:
            identity = identity_from_claims(claims, trust, subject=subject)
            async with self.ctx.engine.connect() as conn:
                facts = await load_facts(conn, identity, local_issuer=self.ctx.issuer_url)
            resolution = resolve_subject(
                identity, facts, scope=scope, authz_claim=trust.authz_claim
            )
            compiled = self.policy_engine.compile(resolution.subject)
            # Counts only: subject ids and claims stay out of traces.
            span.set_attribute("rbac.account_type", resolution.subject.account_type.value)
            span.set_attribute("rbac.groups", len(facts.groups))
            span.set_attribute("rbac.organizations", len(resolution.member_orgs))
            span.set_attribute("rbac.generation", generation)
        if self._metrics is not None:
            self._metrics.resolve_seconds.observe(time.perf_counter() - start)
        entry = Resolved(generation, now, resolution, compiled)
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry

    async def aclose(self) -> None:
        """Release the held connection (``Services.aclose`` calls this)."""
        await self._reader.aclose()

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.lookups.labels(result=result).inc()

    async def service_account(self, sa_id: str, organization_id: str) -> ServiceAccount:
        """Organization ``organization_id``'s service account ``sa_id`` (a foreign or missing
        one is :class:`~watchword.errors.NotFound`)."""
        return await get_service_account(self.ctx, sa_id, organization_id=organization_id)

    async def acl(
        self,
        issuer: str,
        subject: str | None,
        claims: Mapping[str, object] | None = None,
        *,
        scope: TokenScope | None = None,
        organization_id: str | None = None,
    ) -> dict[str, object]:
        resolved = await self.resolve(issuer, subject, claims, scope=scope)
        return resolved.document(organization_id)


_DOCUMENT_CACHE_MEMBERSHIPS = 64
"""Inline subject documents with more organization and project entries than this are not
memoized: serializing one for the cache key would cost more than the O(1) parse and compile
(authz lazy compilation) it saves."""


def _memberships(document: object) -> int:
    if not isinstance(document, dict):
        return 0
    count = 0
    for name in ("organizations", "projects"):
        entries = document.get(name)
        if isinstance(entries, dict | list):
            count += len(entries)
    return count
