"""The engine shell: policy versions, stale subjects, metrics, spans and the decision log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY, CollectorRegistry

from watchword.authz import (
    BUCKETS,
    AuthzMetrics,
    DecisionEvent,
    DecisionLog,
    Engine,
    Object,
    StaleSubject,
    Subject,
    parse_policy,
    parse_role,
)
from watchword.clock import FakeClock
from watchword.errors import UnknownAction, UnknownResourceType

POLICY = {
    "resource_types": [{"name": "t", "actions": ["read", "delete"]}],
    "roles": [
        {
            "name": "reader",
            "permissions": {"organization": [{"resource_type": "t", "actions": ["read"]}]},
        }
    ],
}
ALICE = Subject(
    "https://i", "alice", organizations={"o1": frozenset({"reader"})}, groups=frozenset({"g"})
)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_engine_when_role_changes_refuses_stale_subject_until_refreshed() -> None:
    engine = Engine(parse_policy(POLICY))
    alice = engine.compile(ALICE)
    obj = Object("t", "x", "o1")
    assert not engine.check(alice, "delete", obj).allowed
    engine.put_role(
        parse_role(
            {
                "name": "reader",
                "permissions": {"organization": [{"resource_type": "t", "actions": ["*"]}]},
            }
        )
    )
    assert engine.version == 2
    for ask in (
        lambda: engine.check(alice, "delete", obj),
        lambda: engine.prepare(alice, "delete", "t"),
        lambda: engine.filter(alice, "delete", [obj]),
        lambda: engine.explain(alice, "delete", obj),
    ):
        with pytest.raises(StaleSubject):
            ask()
    fresh = engine.refresh(alice)
    assert engine.refresh(fresh) is fresh
    assert engine.check(fresh, "delete", obj).allowed


def test_engine_when_role_change_is_invalid_keeps_active_policy() -> None:
    engine = Engine(parse_policy(POLICY))
    alice = engine.compile(ALICE)
    bad = parse_role(
        {"name": "x", "permissions": {"global": [{"resource_type": "t", "actions": ["fly"]}]}}
    )
    with pytest.raises(UnknownAction):
        engine.put_role(bad)
    assert engine.version == 1
    assert engine.check(alice, "read", Object("t", "x", "o1")).allowed


def test_metrics_when_observe_every_n_records_one_check_in_n() -> None:
    registry = CollectorRegistry()
    engine = Engine(parse_policy(POLICY), metrics=AuthzMetrics(registry), observe_every=4)
    alice = engine.compile(ALICE)
    for i in range(40):
        engine.check(alice, "read", Object("t", f"x{i}", "o1" if i % 2 else "o2"))
    name = "watchword_authz_check_duration_seconds_count"
    allowed = sample(registry, name, outcome="allowed")
    denied = sample(registry, name, outcome="denied")
    assert allowed + denied == 10
    assert allowed == 10  # every 4th call is odd-numbered, i.e. in o1
    assert sample(registry, "watchword_authz_observe_every") == 4
    # no side effect on the process-wide default registry
    assert REGISTRY.get_sample_value(name, {"outcome": "allowed"}) is None


def test_metrics_when_buckets_resolve_microseconds() -> None:
    assert BUCKETS[0] == 1e-6
    assert BUCKETS[-1] == 1.0
    assert list(BUCKETS) == sorted(BUCKETS)
    registry = CollectorRegistry()
    engine = Engine(parse_policy(POLICY), metrics=AuthzMetrics(registry), observe_every=1)
    engine.check(engine.compile(ALICE), "read", Object("t", "x", "o1"))
    bound = registry.get_sample_value(
        "watchword_authz_check_duration_seconds_bucket", {"outcome": "allowed", "le": "1e-06"}
    )
    assert bound is not None  # the 1 µs bucket exists (whether this call fitted in it or not)


def test_metrics_when_check_errors_counts_every_error() -> None:
    registry = CollectorRegistry()
    engine = Engine(parse_policy(POLICY), metrics=AuthzMetrics(registry), observe_every=1000)
    alice = engine.compile(ALICE)
    for _ in range(3):
        with pytest.raises(UnknownResourceType):
            engine.check(alice, "read", Object("nope", "x"))
    assert sample(registry, "watchword_authz_errors_total", operation="check") == 3


def test_metrics_when_prepare_filter_explain_or_stale_subject_errors_counts_each() -> None:
    registry = CollectorRegistry()
    engine = Engine(parse_policy(POLICY), metrics=AuthzMetrics(registry), observe_every=1000)
    alice = engine.compile(ALICE)
    with pytest.raises(UnknownAction):
        engine.prepare(alice, "fly", "t")
    with pytest.raises(UnknownAction):
        engine.filter(alice, "fly", [Object("t", "x")])
    with pytest.raises(UnknownAction):
        engine.explain(alice, "fly", Object("t", "x"))
    engine.put_role(parse_role({"name": "other", "permissions": {}}))
    with pytest.raises(StaleSubject):
        engine.check(alice, "read", Object("t", "x"))
    with pytest.raises(StaleSubject):
        engine.prepare(alice, "read", "t")
    errors = "watchword_authz_errors_total"
    assert sample(registry, errors, operation="prepare") == 2
    assert sample(registry, errors, operation="filter") == 1
    assert sample(registry, errors, operation="explain") == 1
    assert sample(registry, errors, operation="check") == 1


def test_prepare_when_called_records_histogram_and_span_attributes() -> None:
    registry = CollectorRegistry()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = Engine(
        parse_policy(POLICY),
        metrics=AuthzMetrics(registry),
        tracer_provider=provider,
        observe_every=1,
    )
    alice = engine.compile(ALICE)
    engine.prepare(alice, "read", "t")
    engine.check(alice, "read", Object("t", "x", "o1", acl_users={"k": {"read"}}))
    objs = [Object("t", f"x{i}", "o1" if i % 3 else "o9") for i in range(12)]
    assert len(engine.filter(alice, "read", objs)) == 8
    assert sample(registry, "watchword_authz_prepare_duration_seconds_count", outcome="ok") == 1
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"authz.prepare", "authz.check", "authz.filter"}
    assert spans["authz.prepare"].instrumentation_scope is not None
    assert spans["authz.prepare"].instrumentation_scope.name == "watchword.authz"
    check_attrs = dict(spans["authz.check"].attributes or {})
    assert check_attrs["authz.subject_organizations"] == 1
    assert check_attrs["authz.subject_projects"] == 0
    assert check_attrs["authz.subject_global_roles"] == 0
    assert check_attrs["authz.subject_groups"] == 1
    assert check_attrs["authz.object_acl_entries"] == 1
    assert check_attrs["authz.outcome"] == "allowed"
    filter_attrs = dict(spans["authz.filter"].attributes or {})
    assert (filter_attrs["authz.objects"], filter_attrs["authz.objects_kept"]) == (12, 8)
    # org_id IN {o1} OR acl_users has OR acl_groups has
    assert dict(spans["authz.prepare"].attributes or {})["authz.residual_nodes"] == 4


def test_decision_log_when_rate_is_quarter_logs_every_fourth_decision() -> None:
    events: list[DecisionEvent] = []
    clock = FakeClock(datetime(2026, 5, 1, tzinfo=UTC))
    engine = Engine(
        parse_policy(POLICY),
        decision_log=DecisionLog(events.append, rate=0.25),
        clock=clock,
        observe_every=1000,
    )
    alice = engine.compile(ALICE)
    for i in range(20):
        engine.check(alice, "read", Object("t", f"x{i}", "o1" if i < 10 else "o2"))
    assert [e.object_id for e in events] == ["x3", "x7", "x11", "x15", "x19"]
    first = events[0].to_dict()
    assert first["subject"] == "https://i|alice"
    assert (first["allowed"], first["decided_by"], first["role"]) == (
        True,
        "organization",
        "reader",
    )
    assert first["decided_at"] == "2026-05-01T00:00:00+00:00"
    assert events[-1].allowed is False
    assert events[-1].latency.total_seconds() >= 0


def test_decision_log_when_rate_out_of_range_refuses() -> None:
    with pytest.raises(ValueError, match="rate"):
        DecisionLog(lambda e: None, rate=0.0)


def test_filter_switches_to_prepare_where_asked_with_the_same_answers() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = Engine(parse_policy(POLICY), tracer_provider=provider)
    alice = engine.compile(ALICE)
    objs = [Object("t", f"x{i}", "o1" if i % 3 else "o9") for i in range(12)]
    one_by_one = engine.filter(alice, "read", objs)
    prepared = engine.filter(alice, "read", objs, prepare_from=5)
    assert one_by_one == prepared and len(prepared) == 8
    flags = [s.attributes["authz.prepared"] for s in exporter.get_finished_spans()]  # type: ignore[index]
    assert flags == [False, True]
