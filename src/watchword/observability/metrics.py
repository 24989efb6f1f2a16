"""Prometheus metrics for the HTTP surface; each app owns its registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["HttpMetrics", "LATENCY_BUCKETS"]

# From 100 µs to 10 s: HTTP handlers that only consult caches answer well under 1 ms.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class HttpMetrics:
    requests: Counter
    latency: Histogram
    # (method, route, status) -> the two labelled children: labels() costs more than inc()
    _children: dict[tuple[str, str, int], tuple[Any, Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def create(cls, registry: CollectorRegistry) -> HttpMetrics:
        labels = ("method", "route", "status")
        return cls(
            requests=Counter(
                "watchword_http_requests",
                "HTTP requests handled, by route template and status.",
                labels,
                registry=registry,
            ),
            latency=Histogram(
                "watchword_http_request_duration_seconds",
                "HTTP request latency, by route template and status.",
                labels,
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            # As many as prometheus_client keeps itself (one child per label set).
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route, str(status)),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
