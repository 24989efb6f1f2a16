"""Prometheus metrics of API tokens, registered once per runtime on its registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

__all__ = ["TokenMetrics"]


class TokenMetrics:
    """Verifications by outcome and where the answer came from, rotations, janitor work."""

    __slots__ = (
        "cache_rejected",
        "janitor_deleted",
        "janitor_runs",
        "rotations",
        "verifications",
    )

    def __init__(self, registry: CollectorRegistry, *, namespace: str = "watchword") -> None:
        self.verifications = Counter(
            "token_verifications",
            "API-token verifications by outcome (ok, malformed, unknown, expired, revoked) "
            "and source (local cache, redis cache, negative cache, database, none).",
            ["outcome", "source"],
            namespace=namespace,
            registry=registry,
        )
        self.cache_rejected = Counter(
            "token_cache_rejected",
            "Shared (Redis) verification-cache entries refused and treated as a miss, by "
            "reason (unsigned, bad_signature, expired, unreadable).",
            ["reason"],
            namespace=namespace,
            registry=registry,
        )
        self.rotations = Counter(
            "token_rotations",
            "Integration-token rotation calls by result: cached (no database), "
            "cached_after_lock (another worker had just rotated), rotated.",
            ["result"],
            namespace=namespace,
            registry=registry,
        )
        self.janitor_deleted = Counter(
            "token_janitor_deleted",
            "Tokens deleted by the janitor, by reason (expired, revoked, legacy_no_expiry).",
            ["reason"],
            namespace=namespace,
            registry=registry,
        )
        self.janitor_runs = Counter(
            "token_janitor_runs",
            "Janitor runs by outcome (done, dry_run, skipped: another replica held the lease).",
            ["outcome"],
            namespace=namespace,
            registry=registry,
        )
