from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchword.tokens.format import TokenKind
from watchword.tokens.rotation import (
    MAX_LIFETIME,
    DeletionReason,
    Lifetime,
    cached_value_fresh,
    deletion_reason,
    is_current,
    latest_expiry,
    plan_rotation,
    retiring_expires_at,
    successor_expires_at,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
GRACE = timedelta(days=1)
TTL = timedelta(hours=1)
RETENTION = timedelta(days=7)


def test_plan_rotation_cold_start_mints_one_without_expiring_anything() -> None:
    plan = plan_rotation(TokenKind.INTEGRATION, [], NOW, cache_ttl=TTL, grace=GRACE)
    assert plan.expire == () and plan.rotated_from is None
    assert plan.successor_expires_at == NOW + TTL + GRACE


def test_plan_rotation_retires_current_and_legacy_but_not_retiring_or_revoked() -> None:
    tokens = [
        Lifetime("cur", NOW - TTL, NOW + GRACE + timedelta(minutes=5), None),
        Lifetime("legacy", NOW - timedelta(days=90), None, None),
        Lifetime("retiring", NOW - 2 * TTL, NOW + timedelta(hours=3), None),
        Lifetime("revoked", NOW - TTL, NOW + 2 * GRACE, NOW - timedelta(minutes=1)),
    ]
    plan = plan_rotation(TokenKind.INTEGRATION, tokens, NOW, cache_ttl=TTL, grace=GRACE)
    assert dict(plan.expire) == {"cur": NOW + GRACE, "legacy": NOW + GRACE}
    assert plan.rotated_from == "cur"


def test_retiring_expires_at_never_extends_a_token() -> None:
    assert retiring_expires_at(NOW + timedelta(hours=1), NOW, GRACE) == NOW + timedelta(hours=1)
    assert retiring_expires_at(None, NOW, GRACE) == NOW + GRACE


def test_successor_expires_at_keeps_lifetime_length_for_personal_tokens() -> None:
    old = Lifetime("a", NOW - timedelta(days=10), NOW + timedelta(days=20), None)
    assert successor_expires_at(
        TokenKind.PERSONAL, old, NOW, cache_ttl=TTL, grace=GRACE
    ) == NOW + timedelta(days=30)
    forever = Lifetime("b", NOW, None, None)
    assert (
        successor_expires_at(TokenKind.SERVICE_ACCOUNT, forever, NOW, cache_ttl=TTL, grace=GRACE)
        is None
    )


lifetimes = st.builds(
    Lifetime,
    id=st.uuids().map(str),
    created_at=st.integers(-10_000, 0).map(lambda m: NOW + timedelta(minutes=m)),
    expires_at=st.none() | st.integers(-5_000, 5_000).map(lambda m: NOW + timedelta(minutes=m)),
    revoked_at=st.none() | st.integers(-5_000, 0).map(lambda m: NOW + timedelta(minutes=m)),
)


@given(st.lists(lifetimes, max_size=8), st.integers(0, 3_000))
def test_plan_rotation_leaves_exactly_one_current_token(
    existing: list[Lifetime], grace_minutes: int
) -> None:
    grace = timedelta(minutes=grace_minutes)
    plan = plan_rotation(TokenKind.INTEGRATION, existing, NOW, cache_ttl=TTL, grace=grace)
    expired = dict(plan.expire)
    after = [
        Lifetime(t.id, t.created_at, expired.get(t.id, t.expires_at), t.revoked_at)
        for t in existing
    ]
    after.append(Lifetime("new", NOW, plan.successor_expires_at, None))
    assert [t.id for t in after if is_current(t, NOW, grace)] == ["new"]
    # nothing is shortened below the grace window; only the replaced token is extended,
    # and only to exactly the end of the grace window
    for t in existing:
        if t.id in expired:
            new = expired[t.id]
            if t.id != plan.rotated_from:
                assert t.expires_at is None or new <= t.expires_at
            assert new == NOW + grace or new == t.expires_at


@given(st.lists(lifetimes, max_size=8), st.integers(0, 3_000))
def test_plan_rotation_replaced_token_lives_exactly_the_full_grace_after_the_rotation(
    existing: list[Lifetime], grace_minutes: int
) -> None:
    grace = timedelta(minutes=grace_minutes)
    plan = plan_rotation(TokenKind.INTEGRATION, existing, NOW, cache_ttl=TTL, grace=grace)
    valid = [
        t for t in existing if t.revoked_at is None and (t.expires_at is None or t.expires_at > NOW)
    ]
    assert (plan.rotated_from is None) == (not valid)
    if plan.rotated_from is not None:
        assert dict(plan.expire)[plan.rotated_from] == NOW + grace


@given(st.integers(0, 7_200), st.integers(1, 3_000))
def test_plan_rotation_of_a_token_past_its_cache_period_extends_it_to_rotated_at_plus_grace(
    late_s: int, grace_s: int
) -> None:
    """A token minted at t expires at t + ttl + grace; the call that rotates it comes
    ``late_s`` after the cache period: the token still gets the whole grace from then."""
    grace = timedelta(seconds=grace_s)
    minted = NOW - TTL - timedelta(seconds=late_s)
    token = Lifetime("old", minted, minted + TTL + grace, None)
    plan = plan_rotation(TokenKind.INTEGRATION, [token], NOW, cache_ttl=TTL, grace=grace)
    if token.expires_at is not None and token.expires_at <= NOW:
        assert plan.rotated_from is None and plan.expire == ()  # died with no call
    else:
        assert dict(plan.expire) == {"old": NOW + grace} and plan.rotated_from == "old"


@pytest.mark.parametrize(
    ("age", "fresh"),
    [(timedelta(0), True), (TTL - timedelta(seconds=1), True), (TTL, False), (-TTL, False)],
)
def test_cached_value_fresh_by_age(age: timedelta, fresh: bool) -> None:
    assert cached_value_fresh(NOW - age, NOW, TTL) is fresh


DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("case", "kind", "expires_at", "revoked_at", "reason"),
    [
        (
            "legacy integration, no expiry",
            TokenKind.INTEGRATION,
            None,
            None,
            DeletionReason.LEGACY_NO_EXPIRY,
        ),
        ("personal, no expiry", TokenKind.PERSONAL, None, None, None),
        ("expired within retention", TokenKind.INTEGRATION, NOW - DAY, None, None),
        (
            "expired beyond retention",
            TokenKind.PERSONAL,
            NOW - 8 * DAY,
            None,
            DeletionReason.EXPIRED,
        ),
        (
            "revoked beyond retention",
            TokenKind.PERSONAL,
            None,
            NOW - 8 * DAY,
            DeletionReason.REVOKED,
        ),
        ("revoked within retention", TokenKind.SERVICE_ACCOUNT, NOW + DAY, NOW - DAY, None),
        ("live", TokenKind.INTEGRATION, NOW + DAY, None, None),
    ],
)
def test_deletion_reason_table(
    case: str,
    kind: TokenKind,
    expires_at: datetime | None,
    revoked_at: datetime | None,
    reason: DeletionReason | None,
) -> None:
    assert deletion_reason(kind, expires_at, revoked_at, NOW, RETENTION) is reason, case


def test_successor_expires_at_never_overflows_and_caps_the_lifetime() -> None:
    far = Lifetime("far", NOW, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), None)
    after = successor_expires_at(TokenKind.PERSONAL, far, NOW, cache_ttl=TTL, grace=GRACE)
    assert after == NOW + MAX_LIFETIME
    late = datetime(9999, 12, 1, tzinfo=UTC)
    assert successor_expires_at(TokenKind.PERSONAL, far, late, cache_ttl=TTL, grace=GRACE) == (
        datetime.max.replace(tzinfo=UTC)
    )
    assert latest_expiry(NOW) == NOW + MAX_LIFETIME


def test_deletion_reason_exactly_at_retention_keeps_the_token() -> None:
    # deleted once expired or revoked for *longer* than the retention, not at it
    at_cutoff = NOW - RETENTION
    assert deletion_reason(TokenKind.PERSONAL, at_cutoff, None, NOW, RETENTION) is None
    assert deletion_reason(TokenKind.PERSONAL, None, at_cutoff, NOW, RETENTION) is None
    just_over = at_cutoff - timedelta(microseconds=1)
    assert (
        deletion_reason(TokenKind.PERSONAL, just_over, None, NOW, RETENTION)
        is DeletionReason.EXPIRED
    )
    assert (
        deletion_reason(TokenKind.PERSONAL, None, just_over, NOW, RETENTION)
        is DeletionReason.REVOKED
    )


def test_plan_rotation_token_expiring_now_is_not_the_predecessor() -> None:
    tokens = [
        Lifetime("older", NOW - 2 * TTL, NOW + timedelta(hours=3), None),
        Lifetime("ends-now", NOW - TTL, NOW, None),
    ]
    plan = plan_rotation(TokenKind.INTEGRATION, tokens, NOW, cache_ttl=TTL, grace=GRACE)
    assert plan.rotated_from == "older"
    # the predecessor gets its full grace after this rotation (issue 15 item 32); the token
    # that ends now is left to end
    assert plan.expire == (("older", NOW + GRACE),)


def test_plan_rotation_personal_successor_keeps_the_newest_lifetime_length() -> None:
    tokens = [
        Lifetime("old", NOW - timedelta(days=40), NOW + timedelta(days=50), None),
        Lifetime("new", NOW - timedelta(days=10), NOW + timedelta(days=20), None),
    ]
    plan = plan_rotation(TokenKind.PERSONAL, tokens, NOW, cache_ttl=TTL, grace=GRACE)
    assert plan.successor_expires_at == NOW + timedelta(days=30)
    assert plan.rotated_from == "new"
    assert dict(plan.expire) == {"old": NOW + GRACE, "new": NOW + GRACE}
