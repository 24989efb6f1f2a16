"""Logs (structlog, JSON, secrets redacted), Prometheus metrics and OpenTelemetry traces."""
