"""OpenTelemetry tracing: exported over OTLP/HTTP when an endpoint is configured.

Without an endpoint watchword installs nothing, so the API's no-op tracer is used and
spans cost almost nothing.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

__all__ = ["build_provider", "configure_tracing"]

_configured: list[TracerProvider] = []


def build_provider(endpoint: str, service_name: str) -> TracerProvider:
    """A provider that batches spans to ``endpoint`` (OTLP/HTTP protobuf)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def configure_tracing(endpoint: str | None, service_name: str) -> TracerProvider | None:
    """Install an exporting provider once per process; return it, or None when disabled.

    OpenTelemetry allows one global provider per process, so the first configured
    endpoint wins; later apps in the same process (tests) share it.
    """
    if endpoint is None:
        return None
    if not _configured:
        provider = build_provider(endpoint, service_name)
        trace.set_tracer_provider(provider)
        _configured.append(provider)
    return _configured[0]
