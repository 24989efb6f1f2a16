"""Tables of sign-in: sessions, started sign-ins (flows) and seen back-channel logout tokens.

``sessions`` holds one row per sign-in. The browser's cookie is ``<id>.<secret>``; only the
SHA-256 of the secret is stored. Upstream tokens are sealed (:mod:`watchword.sessions.sealing`)
and ``key_id`` names the key that sealed the row, so ``watchword keys rotate`` finds what is
left to re-seal with one indexed query and can resume after an interruption. ``version``
serves optimistic updates (the refresher and interactive requests both write).

``signin_flows`` makes a started sign-in single-use and bound to one browser: the row is
keyed by the SHA-256 of ``state`` and stores the SHA-256 of the browser's binding cookie; the
callback deletes the row (only one caller can) and needs the same cookie.

``logout_tokens_seen`` keeps each back-channel logout token's ``jti`` until it expires, so a
replayed logout token is refused.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)

from watchword.storage.tables import metadata

__all__ = ["logout_tokens_seen", "refresher_members", "sessions", "signin_flows"]

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("issuer", String(500), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("upstream_sid", String(255), nullable=True),
    Column("email", String(320), nullable=True),
    Column("display_name", String(200), nullable=True),
    Column("claims", Text, nullable=False),
    # The organizations the subject belonged to when the session was made (or last
    # refreshed), as "|o1|o2|": what lets an organization's administrators list its sessions.
    Column("organization_ids", Text, nullable=False, server_default="|"),
    Column("access_token", LargeBinary, nullable=True),
    Column("refresh_token", LargeBinary, nullable=True),
    Column("id_token", LargeBinary, nullable=True),
    Column("key_id", String(32), nullable=False),
    Column("access_expires_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("refreshed_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False, server_default="1"),
    # Kept fresh (migration 0008): the refresh fields the schedule reads, written only by a
    # refresh attempt; refresh_due_at is the schedule's answer, stored so a refresher finds
    # what is due with one indexed range query over its shards.
    Column("state", String(20), nullable=False, server_default="active"),
    Column("state_reason", Text, nullable=True),
    Column("shard", Integer, nullable=False, server_default="0"),
    Column("refresh_due_at", DateTime(timezone=True), nullable=True),
    Column("refresh_attempt_at", DateTime(timezone=True), nullable=True),
    Column("refresh_failures", Integer, nullable=False, server_default="0"),
    Column("retry_after", DateTime(timezone=True), nullable=True),
    Column("userinfo_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_error_at", DateTime(timezone=True), nullable=True),
    # The refresh-once lock is the row itself (migration 0010): a claim takes it by
    # compare-and-swap, raising ``fence`` by one and recording the claim as the **intent** to
    # redeem the refresh token (``intent_fence`` = the claim's fence) with a lease
    # (``lease_until``, ``lease_holder``); the outcome clears them in one write fenced on
    # ``fence``. An intent whose lease lapsed means a holder died mid-refresh: its refresh
    # token is never presented again (see watchword.sessions.refresh).
    Column("intent_fence", BigInteger, nullable=True),
    Column("intent_at", DateTime(timezone=True), nullable=True),
    Column("fence", BigInteger, nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("lease_holder", String(200), nullable=True),
    Index("ix_sessions_subject", "issuer", "subject"),
    # Due order first: a refresher's "due sessions in my shards, oldest first, LIMIT n" reads
    # the index in due order and stops at n (a (shard, due) index made it fetch and sort the
    # whole due backlog of its shards: benchmarks/sessions, refresher section).
    # The slot second (migration 0010): a replica holding some of the shards skips the other
    # shards' rows inside the index, without reading them from the table.
    Index("ix_sessions_due_at", "refresh_due_at", "shard"),
    # Claims whose holder may have died: few rows (only refreshes in flight), found per pass.
    Index(
        "ix_sessions_intent_lease",
        "lease_until",
        postgresql_where=text("intent_fence IS NOT NULL"),
        sqlite_where=text("intent_fence IS NOT NULL"),
    ),
    Index("ix_sessions_upstream_sid", "issuer", "upstream_sid"),
    Index("ix_sessions_expires_at", "expires_at"),
    Index("ix_sessions_key_id", "key_id"),
)

signin_flows = Table(
    "signin_flows",
    metadata,
    Column("state_hash", String(64), primary_key=True),
    Column("binding_hash", String(64), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("return_to", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_signin_flows_expires_at", "expires_at"),
)

logout_tokens_seen = Table(
    "logout_tokens_seen",
    metadata,
    Column("jti_hash", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_logout_tokens_seen_expires_at", "expires_at"),
)

# Background refreshers alive (a heartbeat per pass): the fair share of shards is
# ceil(shards / members seen within one lease).
refresher_members = Table(
    "refresher_members",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)
