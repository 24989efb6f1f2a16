"""The refresh schedule, on simulated time: the seed's failure (a session updated every second
never refreshed, pomerium's identity manager before 6a24b01) cannot happen here; temporary
failures back off and recover; permanent ones end the session; and over random sequences of
updates, outages and clock steps no token expires while its session is alive and the provider
is up through the refresh window."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchword.sessions.schedule import (
    Failure,
    RefreshPolicy,
    RefreshState,
    backoff,
    classify,
    refresh_due,
    session_end,
    userinfo_due,
)

T0 = datetime(2026, 12, 2, tzinfo=UTC)
POLICY = RefreshPolicy()
LIFETIME = timedelta(minutes=5)
SECOND = timedelta(seconds=1)


@dataclass
class SimSession:
    """A session as the refresher and request handling both see it."""

    access_expires_at: datetime
    last_attempt_at: datetime | None = None
    failures: int = 0
    retry_after: datetime | None = None
    # Fields that interactive requests update all the time:
    last_seen_at: datetime = T0
    claims: dict[str, object] = field(default_factory=dict)
    updates: int = 0
    ended: str | None = None
    # The seed's field: reset by every update.
    seed_last_refresh: datetime | None = None

    def state(self) -> RefreshState:
        return RefreshState(
            access_expires_at=self.access_expires_at,
            has_refresh_token=True,
            last_attempt_at=self.last_attempt_at,
            failures=self.failures,
            retry_after=self.retry_after,
        )

    def update(self, now: datetime) -> None:
        """What a request does: record access, touch claims (never a refresh field)."""
        self.last_seen_at = now
        self.claims = {"n": self.updates}
        self.updates += 1
        self.seed_last_refresh = now  # what the seed did on every update


Due = Callable[[SimSession, datetime], datetime | None]


def ours(session: SimSession, now: datetime) -> datetime | None:
    return refresh_due(session.state(), POLICY, jitter=0.5)


def seeds(session: SimSession, now: datetime) -> datetime | None:
    """The seed's rule: the refresh is due coolOff after lastRefresh, which every update
    resets, and not before the grace period before expiry."""
    due = session.access_expires_at - POLICY.grace
    if session.seed_last_refresh is not None:
        due = max(due, session.seed_last_refresh + POLICY.cool_off)
    return due


def refresh(session: SimSession, now: datetime, *, upstream_up: bool, permanent: bool) -> None:
    session.last_attempt_at = now
    if permanent:
        session.ended = "refresh_failed"
    elif upstream_up:
        session.access_expires_at = now + LIFETIME
        session.failures = 0
        session.retry_after = None
    else:
        session.failures += 1


def run(
    due_rule: Due,
    *,
    seconds: int,
    update_every: int | None = 1,
    upstream_up: Callable[[datetime], bool] = lambda _now: True,
) -> list[datetime]:
    """One tick per second: requests update the session, the refresher refreshes what is due.
    The instants at which the session was alive with an expired access token."""
    session = SimSession(access_expires_at=T0 + LIFETIME)
    expired_while_alive: list[datetime] = []
    for tick in range(seconds):
        now = T0 + tick * SECOND
        if update_every and tick % update_every == 0:
            session.update(now)
        due = due_rule(session, now)
        if due is not None and due <= now:
            refresh(session, now, upstream_up=upstream_up(now), permanent=False)
        if session.ended is None and now >= session.access_expires_at:
            expired_while_alive.append(now)
    return expired_while_alive


def test_the_seeds_scenario_an_update_every_second_still_refreshes_before_expiry() -> None:
    assert run(ours, seconds=4 * 3600) == []


def test_the_harness_catches_the_seeds_rule() -> None:
    # The same simulation with the seed's schedule: the token expires and never comes back.
    failures = run(seeds, seconds=3600)
    assert failures and failures[0] == T0 + LIFETIME
    assert run(seeds, seconds=3600, update_every=None) == []  # quiet sessions were fine


def test_an_update_never_moves_a_pending_refresh() -> None:
    session = SimSession(access_expires_at=T0 + LIFETIME, last_attempt_at=T0, failures=2)
    before = ours(session, T0)
    for second in range(600):
        session.update(T0 + second * SECOND)
        assert ours(session, T0 + second * SECOND) == before


def test_temporary_failures_back_off_and_recover_before_expiry_when_the_provider_returns() -> None:
    # Down for the first 20 s of the window, then up: refreshed before expiry.
    window = T0 + LIFETIME - POLICY.grace
    expired = run(
        ours, seconds=3600, upstream_up=lambda now: not window <= now < window + 20 * SECOND
    )
    assert expired == []


def test_a_long_outage_keeps_retrying_with_capped_backoff_and_recovers() -> None:
    outage_end = T0 + timedelta(minutes=30)
    session = SimSession(access_expires_at=T0 + LIFETIME)
    attempts: list[datetime] = []
    for tick in range(3600):
        now = T0 + tick * SECOND
        due = ours(session, now)
        if due is not None and due <= now:
            attempts.append(now)
            refresh(session, now, upstream_up=now >= outage_end, permanent=False)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert max(gaps) <= POLICY.backoff_max + SECOND  # capped
    assert gaps[0] >= POLICY.cool_off  # never faster than the cool-off
    # Recovered within one capped backoff after the outage ended.
    first_after = min(a for a in attempts if a >= outage_end)
    assert first_after <= outage_end + POLICY.backoff_max + SECOND
    assert session.access_expires_at > T0 + timedelta(hours=1) - POLICY.grace


def test_retry_after_is_honoured_and_backoff_is_exponential_with_jitter_bounds() -> None:
    state = RefreshState(
        access_expires_at=T0 + LIFETIME,
        has_refresh_token=True,
        last_attempt_at=T0 + LIFETIME - POLICY.grace,
        failures=1,
        retry_after=T0 + timedelta(hours=1),
    )
    assert refresh_due(state, POLICY) == T0 + timedelta(hours=1)
    for n in range(1, 12):
        low, high = backoff(n, POLICY, 0.0), backoff(n, POLICY, 0.999999)
        step = min(POLICY.backoff_initial * 2 ** (n - 1), POLICY.backoff_max)
        assert low == step / 2 and step / 2 <= high <= step
    with pytest.raises(ValueError, match="jitter"):
        backoff(1, POLICY, 1.0)


def test_nothing_to_refresh_without_a_refresh_token_or_an_expiry() -> None:
    assert refresh_due(RefreshState(T0, has_refresh_token=False), POLICY) is None
    assert refresh_due(RefreshState(None, has_refresh_token=True), POLICY) is None


def test_session_end_and_userinfo_interval() -> None:
    assert session_end(T0 + timedelta(hours=12), T0, timedelta(hours=1)) == (
        T0 + timedelta(hours=1),
        "idle",
    )
    assert session_end(T0 + timedelta(hours=12), T0, timedelta(0)) == (
        T0 + timedelta(hours=12),
        "expired",
    )
    assert userinfo_due(None, T0, POLICY) == T0 + POLICY.userinfo_interval


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (None, None, Failure.TEMPORARY),
        (503, None, Failure.TEMPORARY),
        (500, "server_error", Failure.TEMPORARY),
        (429, None, Failure.TEMPORARY),
        (408, None, Failure.TEMPORARY),
        (400, "invalid_grant", Failure.PERMANENT),
        (401, "invalid_client", Failure.PERMANENT),
        (400, "unauthorized_client", Failure.PERMANENT),
        (400, "invalid_request", Failure.PERMANENT),
    ],
)
def test_classify(status: int | None, error: str | None, kind: Failure) -> None:
    assert classify(status, error) is kind


def test_policy_refuses_a_grace_not_longer_than_the_cool_off() -> None:
    with pytest.raises(ValueError, match="grace"):
        RefreshPolicy(grace=timedelta(seconds=10), cool_off=timedelta(seconds=10))


# --- random sequences ------------------------------------------------------------------

Step = tuple[str, int]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(1, 90)),
        st.tuples(st.just("update"), st.just(0)),
        st.tuples(st.just("down"), st.just(0)),
        st.tuples(st.just("up"), st.just(0)),
        st.tuples(st.just("demand"), st.just(0)),  # an on-demand refresh attempt
        st.tuples(st.just("retry_after"), st.integers(1, 120)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps, seed=st.integers(0, 2**32 - 1))
def test_no_token_expires_while_the_session_lives_and_the_provider_is_up(
    steps: list[Step], seed: int
) -> None:
    rng = random.Random(seed)
    session = SimSession(access_expires_at=T0 + LIFETIME)
    now = T0
    up = True
    up_since: datetime | None = T0
    throttled_until: datetime | None = None

    def attempt() -> None:
        nonlocal throttled_until
        throttled = throttled_until is not None and now < throttled_until
        refresh(session, now, upstream_up=up and not throttled, permanent=False)
        if throttled:
            session.retry_after = throttled_until

    def tick_to(target: datetime) -> None:
        nonlocal now
        while now < target:
            now += SECOND
            due = refresh_due(session.state(), POLICY, jitter=rng.random())
            if due is not None and due <= now:
                attempt()
            window = session.access_expires_at - POLICY.grace
            clean = (
                up_since is not None
                and up_since <= window
                and (throttled_until is None or throttled_until <= window)
            )
            if now >= session.access_expires_at and clean:
                # Up (and not throttled) through the whole window, yet expired.
                raise AssertionError(f"expired at {now - T0} although the provider was up")

    for kind, amount in steps:
        if kind == "advance":
            tick_to(now + amount * SECOND)
        elif kind == "update":
            before = refresh_due(session.state(), POLICY, jitter=0.0)
            session.update(now)
            assert refresh_due(session.state(), POLICY, jitter=0.0) == before
        elif kind == "down":
            up, up_since = False, None
        elif kind == "up":
            if not up:
                up, up_since = True, now
        elif kind == "demand":
            attempt()
        elif kind == "retry_after":
            throttled_until = now + amount * SECOND
    tick_to(now + LIFETIME * 2)


def test_replace_keeps_the_dataclass_frozen_semantics() -> None:
    state = RefreshState(T0, has_refresh_token=True)
    assert replace(state, failures=3).failures == 3 and state.failures == 0


def test_failures_before_the_window_do_not_delay_its_first_attempt() -> None:
    expires = T0 + LIFETIME
    window = expires - POLICY.grace
    for failures in (1, 5, 12, 40):
        state = RefreshState(
            expires, has_refresh_token=True, last_attempt_at=window - SECOND, failures=failures
        )
        due = refresh_due(state, POLICY, jitter=0.99)
        assert due is not None and due <= window + POLICY.cool_off < expires


def test_inside_the_window_a_retry_never_jumps_past_the_expiry() -> None:
    expires = T0 + LIFETIME
    for offset in (59, 30, 11, 1):
        for failures in (3, 9, 30):
            last = expires - offset * SECOND
            state = RefreshState(
                expires, has_refresh_token=True, last_attempt_at=last, failures=failures
            )
            due = refresh_due(state, POLICY, jitter=0.99)
            assert due is not None and due <= max(expires, last + POLICY.cool_off)
            assert due >= last + POLICY.cool_off
