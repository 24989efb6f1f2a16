"""The optional decision log: one structured event per sampled decision, to a sink you give.

The integrator routes events to structlog; the engine never logs by itself. Sampling is
deterministic: with ``rate=0.25`` exactly one decision in four is logged, no randomness.
Events carry subject keys and object ids, never tokens or other secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from watchword.authz.model import Decision, Object

__all__ = ["DecisionEvent", "DecisionLog", "DecisionSink"]


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    subject: str
    action: str
    object_type: str
    object_id: str
    allowed: bool
    decided_by: str
    role: str | None
    permission: str | None
    acl_entry: str | None
    scope_allowed: bool | None
    latency: timedelta
    decided_at: datetime

    @classmethod
    def of(
        cls,
        *,
        subject: str,
        action: str,
        obj: Object,
        decision: Decision,
        latency: timedelta,
        decided_at: datetime,
    ) -> DecisionEvent:
        return cls(
            subject=subject,
            action=action,
            object_type=obj.type,
            object_id=obj.id,
            allowed=decision.allowed,
            decided_by=decision.decided_by.value,
            role=decision.role,
            permission=None if decision.permission is None else str(decision.permission),
            acl_entry=decision.acl_entry,
            scope_allowed=decision.scope_allowed,
            latency=latency,
            decided_at=decided_at,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "event": "authz.decision",
            "subject": self.subject,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "allowed": self.allowed,
            "decided_by": self.decided_by,
            "role": self.role,
            "permission": self.permission,
            "acl_entry": self.acl_entry,
            "scope_allowed": self.scope_allowed,
            "latency_us": round(self.latency / timedelta(microseconds=1), 3),
            "decided_at": self.decided_at.isoformat(),
        }


class DecisionSink(Protocol):
    def __call__(self, event: DecisionEvent, /) -> None: ...


class DecisionLog:
    """A sink and a sampling rate in (0, 1]."""

    __slots__ = ("_credit", "rate", "sink")

    def __init__(self, sink: DecisionSink, rate: float = 1.0) -> None:
        if not 0.0 < rate <= 1.0:
            raise ValueError("the decision log rate must be in (0, 1]")
        self.sink = sink
        self.rate = rate
        self._credit = 0.0

    def take(self) -> bool:
        """Whether to log this decision (deterministic: ``rate`` of all calls, evenly spread)."""
        self._credit += self.rate
        if self._credit >= 1.0:
            self._credit -= 1.0
            return True
        return False
