"""Rotation and clean-up decisions, given ``now`` (pure: no I/O, no clock, no randomness).

Invariants these rules keep (the I/O shell in :mod:`watchword.tokens.integration` and
:mod:`watchword.tokens.janitor` applies them under a lock):

- Rotation never deletes: the tokens it replaces stay valid until ``now + grace`` (or
  their own earlier expiry), so a consumer still holding one keeps working.
- The token a rotation of a rotated kind replaces (the newest valid one, the successor's
  ``rotated_from``) is valid for the **whole** grace period after that rotation: its
  expiry becomes exactly ``now + grace``, extended if it was going to die sooner (an
  integration token reaches its own grace window one cache period after it was minted,
  and the rotation comes only with the next call after that). Older tokens, retired by
  earlier rotations, keep the expiry those gave them.
- After a rotation exactly one token of the (owner, name) is *current*: not revoked and
  valid beyond the grace window. Tokens inside their grace window are *retiring*.
- An integration token always has an expiry (``now + cache_ttl + grace`` when minted),
  so one the cache never comes back for still dies: with no call for that long it expires
  with no successor, and the next call mints a fresh one; one with no expiry is legacy.
- No token lives longer than ``MAX_LIFETIME`` (ten years) from its creation or rotation:
  creation refuses a later expiry, and a successor keeps its predecessor's lifetime
  length capped at that, so no date arithmetic can overflow (``9999-12-31`` plus anything).
- The janitor deletes a token only once it has been expired or revoked for longer than
  ``retention``, or when it is a legacy token of a rotated kind with no expiry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from watchword.tokens.format import TokenKind

__all__ = [
    "MAX_LIFETIME",
    "ROTATED_KINDS",
    "DeletionReason",
    "Lifetime",
    "RotationPlan",
    "cached_value_fresh",
    "deletion_reason",
    "is_current",
    "janitor_cutoff",
    "latest_expiry",
    "plan_rotation",
    "retiring_expires_at",
    "successor_expires_at",
]

# --- Rules -------------------------------------------------------------------------------

# Kinds that are rotated automatically, so an instance without expiry is a leftover.
ROTATED_KINDS: Final = frozenset({TokenKind.INTEGRATION})

# The longest a token may be valid from when it is minted (created or rotated).
MAX_LIFETIME: Final = timedelta(days=3653)  # ten years


class DeletionReason(StrEnum):
    EXPIRED = "expired"
    REVOKED = "revoked"
    LEGACY_NO_EXPIRY = "legacy_no_expiry"


@dataclass(frozen=True, slots=True)
class Lifetime:
    """What rotation needs to know of an existing token."""

    id: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class RotationPlan:
    """Set each ``expire`` token's ``expires_at``; mint one successor expiring at
    ``successor_expires_at`` with ``rotated_from``."""

    expire: tuple[tuple[str, datetime], ...]
    successor_expires_at: datetime | None
    rotated_from: str | None


# --- Functions ---------------------------------------------------------------------------


def is_current(token: Lifetime, now: datetime, grace: timedelta) -> bool:
    """Not revoked and valid beyond the grace window that starts now."""
    if token.revoked_at is not None:
        return False
    return token.expires_at is None or token.expires_at > now + grace


def retiring_expires_at(expires_at: datetime | None, now: datetime, grace: timedelta) -> datetime:
    """The expiry of a replaced token: ``now + grace``, never later than it already was."""
    end = now + grace
    return end if expires_at is None else min(expires_at, end)


def successor_expires_at(
    kind: TokenKind,
    replaced: Lifetime | None,
    now: datetime,
    *,
    cache_ttl: timedelta,
    grace: timedelta,
) -> datetime | None:
    """Integration tokens live one cache period plus the grace window; others keep the
    lifetime length of the token they replace (none if it had none)."""
    if kind in ROTATED_KINDS:
        return now + cache_ttl + grace
    if replaced is None or replaced.expires_at is None:
        return None
    return _later(now, min(replaced.expires_at - replaced.created_at, MAX_LIFETIME))


def latest_expiry(now: datetime) -> datetime:
    """The latest ``expires_at`` a token minted at ``now`` may have."""
    return _later(now, MAX_LIFETIME)


def _later(moment: datetime, delta: timedelta) -> datetime:
    try:
        return moment + delta
    except OverflowError:  # past year 9999: the latest representable moment instead
        return datetime.max.replace(tzinfo=moment.tzinfo)


def plan_rotation(
    kind: TokenKind,
    existing: Sequence[Lifetime],
    now: datetime,
    *,
    cache_ttl: timedelta,
    grace: timedelta,
) -> RotationPlan:
    """Retire every current token of one (owner, name) and mint one successor."""
    current = [t for t in existing if is_current(t, now, grace)]
    # The successor names the newest token still valid, current or already retiring
    # (an integration token reaches its grace window on its own after one cache period).
    valid = sorted(
        (
            t
            for t in existing
            if t.revoked_at is None and (t.expires_at is None or t.expires_at > now)
        ),
        key=lambda t: (t.created_at, t.id),
    )
    newest = valid[-1] if valid else None
    expire = {t.id: retiring_expires_at(t.expires_at, now, grace) for t in current}
    if newest is not None and kind in ROTATED_KINDS:
        expire[newest.id] = now + grace  # the full grace from this rotation, extended if need be
    return RotationPlan(
        expire=tuple(sorted(expire.items())),
        successor_expires_at=successor_expires_at(
            kind, newest, now, cache_ttl=cache_ttl, grace=grace
        ),
        rotated_from=newest.id if newest else None,
    )


def cached_value_fresh(cached_at: datetime, now: datetime, ttl: timedelta) -> bool:
    """A cached rotation result is served while it is younger than ``ttl``; one from the
    future (a replica's clock ahead of ours) counts as fresh only within ``ttl`` too."""
    return abs(now - cached_at) < ttl


def janitor_cutoff(now: datetime, retention: timedelta) -> datetime:
    return now - retention


def deletion_reason(
    kind: TokenKind,
    expires_at: datetime | None,
    revoked_at: datetime | None,
    now: datetime,
    retention: timedelta,
) -> DeletionReason | None:
    """Why the janitor deletes this token now, or ``None`` to keep it."""
    cutoff = janitor_cutoff(now, retention)
    if revoked_at is not None and revoked_at < cutoff:
        return DeletionReason.REVOKED
    if expires_at is not None and expires_at < cutoff:
        return DeletionReason.EXPIRED
    if expires_at is None and kind in ROTATED_KINDS:
        return DeletionReason.LEGACY_NO_EXPIRY
    return None
