"""Prometheus metrics for locks, registered on a registry the caller passes in.

Nothing is registered globally: two :class:`LockMetrics` on two registries never clash,
which keeps tests and several engines in one process independent.
"""

from __future__ import annotations

from enum import Enum

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["AcquireOutcome", "LockMetrics"]

# Lock waits range from an uncontended CAS (sub-millisecond) to the whole wait limit.
_WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20)
# Holds cover an upstream token call: milliseconds to tens of seconds.
_HOLD_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class AcquireOutcome(Enum):
    ACQUIRED = "acquired"
    TIMEOUT = "timeout"
    ERROR = "error"


class LockMetrics:
    """Acquisitions by backend and outcome, wait and hold times, broken leases, releases."""

    __slots__ = ("acquisitions", "broken", "hold_seconds", "releases", "wait_seconds")

    def __init__(self, registry: CollectorRegistry, *, namespace: str = "watchword") -> None:
        self.acquisitions = Counter(
            "lock_acquisitions",
            "Lock acquisitions by backend and outcome (acquired, timeout, error).",
            ["backend", "outcome"],
            namespace=namespace,
            registry=registry,
        )
        self.wait_seconds = Histogram(
            "lock_wait_seconds",
            "Time from asking for a lock to getting it or giving up.",
            ["backend"],
            namespace=namespace,
            registry=registry,
            buckets=_WAIT_BUCKETS,
        )
        self.hold_seconds = Histogram(
            "lock_hold_seconds",
            "Time from acquiring a lock to releasing it.",
            ["backend"],
            namespace=namespace,
            registry=registry,
            buckets=_HOLD_BUCKETS,
        )
        self.broken = Counter(
            "lock_broken_leases",
            "Grants that took over a lease which had expired without being released.",
            ["backend"],
            namespace=namespace,
            registry=registry,
        )
        self.releases = Counter(
            "lock_releases",
            "Releases by backend and outcome (released; not_held: the lease had been lost; "
            "error: the backend was unreachable and the lease is left to expire).",
            ["backend", "outcome"],
            namespace=namespace,
            registry=registry,
        )

    def acquired(self, backend: str, waited_s: float, *, broken: bool) -> None:
        self.acquisitions.labels(backend, AcquireOutcome.ACQUIRED.value).inc()
        self.wait_seconds.labels(backend).observe(waited_s)
        if broken:
            self.broken.labels(backend).inc()

    def failed(self, backend: str, outcome: AcquireOutcome, waited_s: float) -> None:
        self.acquisitions.labels(backend, outcome.value).inc()
        self.wait_seconds.labels(backend).observe(waited_s)

    def released(self, backend: str, held_s: float, *, held: bool) -> None:
        self.hold_seconds.labels(backend).observe(held_s)
        self.releases.labels(backend, "released" if held else "not_held").inc()
