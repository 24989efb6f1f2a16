"""Prometheus instruments of the authorization engine, registered on a registry you pass.

No instrument is registered on the global default registry: the application passes its
own :class:`~prometheus_client.CollectorRegistry` (tests pass a fresh one).

Checks are cheap (about a microsecond), so the engine observes one call in
``observe_every``; ``watchword_authz_observe_every`` exports that factor so dashboards can
scale the histogram counts back up.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["BUCKETS", "AuthzMetrics"]

# From 1 µs to 1 s: a compiled check takes about a microsecond, a prepare at 1,000
# organizations a few hundred, an SQL compile or a large filter milliseconds.
BUCKETS: tuple[float, ...] = (
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
    1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip


class AuthzMetrics:
    """The engine's histograms, with label children bound once (``labels()`` is not free)."""

    __slots__ = (
        "_errors",
        "check_allowed",
        "check_denied",
        "check_error",
        "errors",
        "filter_duration",
        "observe_every",
        "prepare_error",
        "prepare_ok",
    )

    def __init__(self, registry: CollectorRegistry, buckets: tuple[float, ...] = BUCKETS) -> None:
        check = Histogram(
            "watchword_authz_check_duration_seconds",
            "Duration of one authorization check (sampled: see watchword_authz_observe_every).",
            ["outcome"],
            buckets=buckets,
            registry=registry,
        )
        prepare = Histogram(
            "watchword_authz_prepare_duration_seconds",
            "Duration of preparing a residual predicate for (subject, action, type).",
            ["outcome"],
            buckets=buckets,
            registry=registry,
        )
        self.filter_duration = Histogram(
            "watchword_authz_filter_duration_seconds",
            "Duration of filtering a list of objects in Python.",
            ["outcome"],
            buckets=buckets,
            registry=registry,
        )
        self.observe_every = Gauge(
            "watchword_authz_observe_every",
            "One check in this many is timed and traced.",
            registry=registry,
        )
        self._errors = Counter(
            "watchword_authz_errors",
            "Questions refused with an error (unknown type, action or role; stale subject).",
            ["operation"],
            registry=registry,
        )
        self.errors = self._errors.labels(operation="check")
        self.check_allowed = check.labels(outcome="allowed")
        self.check_denied = check.labels(outcome="denied")
        self.check_error = check.labels(outcome="error")
        self.prepare_ok = prepare.labels(outcome="ok")
        self.prepare_error = prepare.labels(outcome="error")

    def count_error(self, operation: str) -> None:
        """Count an error of ``operation`` (``check``, ``prepare``, ``filter``, ``explain``);
        errors are rare, so the label look-up is paid here, not bound ahead."""
        self._errors.labels(operation=operation).inc()
