"""When a session's upstream tokens are refreshed, and when it ends: pure rules, time passed in.

The lesson of pomerium's identity manager (seed 000): it kept one ``lastRefresh`` that every
update of a session reset, and scheduled the refresh ``coolOff`` after it; a session updated
more often than ``coolOff`` (a steady stream of requests recording access) never refreshed,
and its access token expired. Here the due time is a function of the **refresh fields only**
(:class:`RefreshState`: the access token's expiry, the last refresh *attempt*, the run of
temporary failures, a provider's ``Retry-After``), which only a refresh attempt writes. No
other field of a session (claims, last access, anything) is an input, so no update can move a
pending refresh later; the property tests check it over random update sequences.

The rules, with ``grace`` (default 1 minute) and ``cool_off`` (default 10 s):

- due at ``access_expires_at - grace``, but no earlier than ``last_attempt_at + cool_off``;
- after ``n`` temporary failures in a row: no earlier than ``last_attempt_at + backoff(n)``,
  exponential from ``backoff_initial`` with jitter, capped at ``backoff_max``; but failures
  before the refresh window never delay its first attempt past ``window start + cool_off``,
  and inside the window a retry never jumps past the expiry; and no earlier than a provider's
  ``Retry-After``. So when the provider is up throughout the window, the token is refreshed
  before it expires (``grace > cool_off`` is required);
- nothing to refresh without a refresh token, or without a known access-token expiry;
- user info is due ``userinfo_interval`` after it was last fetched;
- the session itself ends at its absolute expiry or after its idle timeout.

Which upstream answers are temporary (retry) and which are permanent (the session needs a
new sign-in) is :func:`classify`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = [
    "Failure",
    "RefreshPolicy",
    "RefreshState",
    "backoff",
    "classify",
    "next_wake",
    "refresh_due",
    "session_end",
    "userinfo_due",
]


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    grace: timedelta = timedelta(minutes=1)
    cool_off: timedelta = timedelta(seconds=10)
    backoff_initial: timedelta = timedelta(seconds=1)
    backoff_max: timedelta = timedelta(minutes=5)
    userinfo_interval: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if self.cool_off < timedelta(0) or self.grace <= self.cool_off:
            # The first attempt in the window comes at most cool_off after its start: it must
            # still be before the expiry.
            raise ValueError("grace must be longer than cool_off (and cool_off not negative)")
        if self.backoff_initial <= timedelta(0) or self.backoff_max < self.backoff_initial:
            raise ValueError("0 < backoff_initial <= backoff_max")


@dataclass(frozen=True, slots=True)
class RefreshState:
    """The fields of a session the schedule reads. Only a refresh attempt writes them."""

    access_expires_at: datetime | None
    has_refresh_token: bool
    last_attempt_at: datetime | None = None
    failures: int = 0  # temporary failures in a row since the last success
    retry_after: datetime | None = None  # a provider's Retry-After, as an instant


def backoff(failures: int, policy: RefreshPolicy, jitter: float) -> timedelta:
    """The wait after ``failures`` temporary failures in a row: ``initial * 2^(n-1)``,
    capped, scaled by ``0.5 + jitter / 2`` (``jitter`` in [0, 1): full jitter's upper half,
    so retries spread out but never come sooner than half the step)."""
    if failures <= 0:
        return timedelta(0)
    if not 0.0 <= jitter < 1.0:
        raise ValueError("jitter must be in [0, 1)")
    step: timedelta = policy.backoff_initial * (2 ** min(failures - 1, 32))
    capped = min(step, policy.backoff_max)
    return capped * (0.5 + jitter / 2)


def refresh_due(
    state: RefreshState, policy: RefreshPolicy, *, jitter: float = 0.0
) -> datetime | None:
    """When the access token should be refreshed; ``None`` when it cannot or need not be."""
    if not state.has_refresh_token or state.access_expires_at is None:
        return None
    expires = state.access_expires_at
    window = expires - policy.grace  # the refresh window: [expires - grace, expires)
    due = window
    last = state.last_attempt_at
    if last is not None:
        due = max(due, last + policy.cool_off)
        if state.failures > 0:
            retry = last + backoff(state.failures, policy, jitter)
            if last < window:
                # Failures before the window (on-demand attempts): the window still gets its
                # attempt at its start, whatever the backoff had grown to.
                retry = min(retry, max(window, last + policy.cool_off))
            elif last < expires:
                # Inside the window: retry, but never jump past the expiry.
                retry = min(retry, max(expires, last + policy.cool_off))
            due = max(due, retry)
    if state.retry_after is not None:
        due = max(due, state.retry_after)
    return due


def userinfo_due(
    userinfo_at: datetime | None, created_at: datetime, policy: RefreshPolicy
) -> datetime:
    return (userinfo_at or created_at) + policy.userinfo_interval


def session_end(
    expires_at: datetime, last_seen_at: datetime, idle_timeout: timedelta
) -> tuple[datetime, str]:
    """When the session itself ends and why (``expired`` or ``idle``)."""
    if idle_timeout > timedelta(0) and last_seen_at + idle_timeout < expires_at:
        return last_seen_at + idle_timeout, "idle"
    return expires_at, "expired"


def next_wake(*instants: datetime | None) -> datetime | None:
    """The earliest of the given instants (``None`` when there is none)."""
    present = [i for i in instants if i is not None]
    return min(present) if present else None


class Failure(StrEnum):
    TEMPORARY = "temporary"  # retry later, keep the session
    PERMANENT = "permanent"  # the refresh token is dead: the person must sign in again


_PERMANENT_ERRORS = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "unsupported_grant_type"}
)


def classify(status: int | None, error: str | None) -> Failure:
    """Sort an upstream refresh failure. ``status`` ``None``: no answer (timeout, dropped
    connection). 5xx, 408, 429 and no answer are temporary; ``invalid_grant`` (revoked,
    expired or reused refresh token), ``invalid_client`` and ``unauthorized_client`` are
    permanent, as is any other 4xx (retrying the same request cannot change the answer)."""
    if status is None or status >= 500 or status in (408, 425, 429):
        return Failure.TEMPORARY
    if error in _PERMANENT_ERRORS or 400 <= status < 500:
        return Failure.PERMANENT
    return Failure.TEMPORARY
