"""OpenTelemetry tracing: exported over OTLP/HTTP when an endpoint is configured.

Without an endpoint watchword installs nothing, so the API's no-op tracer is used and
spans cost almost nothing.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

__all__ = ["configure_tracing", "tracer"]

_configured: list[TracerProvider] = []


def configure_tracing(endpoint: str | None, service_name: str) -> TracerProvider | None:
    """Install an exporting provider once per process; return it, or None when disabled."""
    if endpoint is None:
        return None
    if _configured:
        return _configured[0]
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    _configured.append(provider)
    return provider


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)
