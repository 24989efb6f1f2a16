"""The engine: the current policy, plus metrics, spans and the decision log around the core.

Invariants this module owns:

- Every change to roles or resource types installs a new :class:`Policy` with a higher
  version, atomically (one attribute swap); a failed change leaves the old one active.
- A :class:`CompiledSubject` compiled against an older policy is refused with
  :class:`StaleSubject` (never silently answered from old roles); :meth:`Engine.refresh`
  recompiles it.
- One check in ``observe_every`` is timed into the histogram and traced; errors are always
  counted. The decision log (if any) samples independently.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, TypeVar, cast

from opentelemetry import trace
from opentelemetry.trace import Tracer, TracerProvider

from watchword.authz.compile import CompiledSubject, compile_subject
from watchword.authz.decisionlog import DecisionEvent, DecisionLog
from watchword.authz.evaluate import (
    FILTER_PREPARE_THRESHOLD,
    Prepared,
    check,
    filter_objects,
    prepare,
)
from watchword.authz.explain import Explanation, explain
from watchword.authz.mapping import ObjectMappings, ObjectView
from watchword.authz.metrics import AuthzMetrics
from watchword.authz.model import Decision, Object, Policy, ResourceType, Role, Subject
from watchword.clock import Clock, SystemClock
from watchword.errors import InvalidInput, StaleSubject, VersionConflict, WatchwordError

__all__ = ["DEFAULT_OBSERVE_EVERY", "TRACER_NAME", "Engine"]

TRACER_NAME = "watchword.authz"
# Measured in benchmarks/authz (observability section): one timed, traced check costs about
# 6 µs (histogram + span, even a no-op one) against about 0.3 µs for the check itself; one in
# 256 adds about 0.02 µs per check on average.
DEFAULT_OBSERVE_EVERY = 256

T = TypeVar("T")


class Engine:
    """Holds the active policy and answers questions with metrics, spans and decision logs."""

    def __init__(
        self,
        policy: Policy,
        *,
        metrics: AuthzMetrics | None = None,
        tracer_provider: TracerProvider | None = None,
        observe_every: int = DEFAULT_OBSERVE_EVERY,
        decision_log: DecisionLog | None = None,
        clock: Clock | None = None,
        objects: ObjectMappings | None = None,
    ) -> None:
        if observe_every < 1:
            raise ValueError("observe_every must be at least 1")
        self._policy = policy
        self._metrics = metrics
        self._tracer: Tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self._every = observe_every
        self._tick = 0
        self._log = decision_log
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._objects = objects
        if metrics is not None:
            metrics.observe_every.set(observe_every)

    # Policy ------------------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def version(self) -> int:
        return self._policy.version

    def replace_policy(self, policy: Policy) -> None:
        """Install ``policy`` (its version must be higher than the current one)."""
        if policy.version <= self._policy.version:
            raise VersionConflict(
                f"policy version {policy.version} is not newer than {self._policy.version}"
            )
        self._policy = policy

    def put_role(self, role: Role) -> Policy:
        """Add or replace a role; a role naming unknown types/actions raises, nothing changes."""
        self._policy = self._policy.with_role(role)
        return self._policy

    def delete_role(self, name: str) -> Policy:
        self._policy = self._policy.without_role(name)
        return self._policy

    def put_resource_type(self, rt: ResourceType) -> Policy:
        self._policy = self._policy.with_resource_type(rt)
        return self._policy

    @property
    def objects(self) -> ObjectMappings | None:
        """How the application's own objects are read (``None``: only :class:`Object`).
        Set it once, at start-up, on an engine built elsewhere (``Services.policy_engine``)."""
        return self._objects

    @objects.setter
    def objects(self, objects: ObjectMappings | None) -> None:
        self._objects = objects

    def view(self, obj: object) -> Object | ObjectView:
        """``obj`` as a check reads it: an :class:`Object` or :class:`ObjectView` as it is,
        an application object through :attr:`objects`."""
        objects = self._objects
        if objects is not None:
            return objects.view(obj)
        if obj.__class__ is Object or isinstance(obj, ObjectView):
            return obj
        raise InvalidInput(
            f"{type(obj).__name__} is not an Object; give the engine "
            "objects=ObjectMappings({...}) to check the application's own objects"
        )

    def _read(self, obj: object) -> Object:
        # An ObjectView reads like an Object (the same attributes): the core's functions
        # take either.
        return cast("Object", self.view(obj))

    # Questions ---------------------------------------------------------------------------

    def compile(self, subject: Subject) -> CompiledSubject:
        return compile_subject(self._policy, subject)

    def refresh(self, compiled: CompiledSubject) -> CompiledSubject:
        """``compiled`` if it is current, else the same subject compiled anew."""
        if compiled.policy is self._policy:
            return compiled
        return compile_subject(self._policy, compiled.subject)

    def _require_current(self, compiled: CompiledSubject, operation: str = "check") -> None:
        if compiled.policy is not self._policy:
            if self._metrics is not None:
                self._metrics.count_error(operation)
            raise StaleSubject(
                f"compiled against policy version {compiled.policy.version}, "
                f"current is {self._policy.version}"
            )

    def check(self, compiled: CompiledSubject, action: str, obj: object) -> Decision:
        """Decide one question; see :func:`watchword.authz.evaluate.check`. ``obj`` is an
        :class:`Object` or an application object read through :attr:`objects`."""
        if compiled.policy is not self._policy:
            self._require_current(compiled)
        if obj.__class__ is not Object:
            objects = self._objects
            obj = cast("Object", objects.view(obj)) if objects is not None else self._read(obj)
        tick = self._tick + 1
        if tick < self._every and self._log is None:
            self._tick = tick
            try:
                return check(compiled, action, obj)
            except WatchwordError:
                if self._metrics is not None:
                    self._metrics.errors.inc()
                raise
        self._tick = 0 if tick >= self._every else tick
        return self._check_observed(compiled, action, obj, sampled=tick >= self._every)

    def _check_observed(
        self, compiled: CompiledSubject, action: str, obj: Object, *, sampled: bool
    ) -> Decision:
        log = self._log if self._log is not None and self._log.take() else None
        if not sampled and log is None:
            try:
                return check(compiled, action, obj)
            except WatchwordError:
                if self._metrics is not None:
                    self._metrics.errors.inc()
                raise
        metrics = self._metrics if sampled else None
        start = time.perf_counter()
        if not sampled:
            decision = check(compiled, action, obj)
            elapsed = time.perf_counter() - start
        else:
            with self._tracer.start_as_current_span("authz.check") as span:
                span.set_attribute("authz.action", action)
                span.set_attribute("authz.object_type", obj.type)
                _subject_attributes(span, compiled)
                span.set_attribute("authz.object_acl_entries", obj.acl_entry_count())
                try:
                    decision = check(compiled, action, obj)
                except WatchwordError:
                    if metrics is not None:
                        metrics.check_error.observe(time.perf_counter() - start)
                        metrics.errors.inc()
                    span.set_attribute("authz.outcome", "error")
                    raise
                elapsed = time.perf_counter() - start
                span.set_attribute("authz.outcome", "allowed" if decision.allowed else "denied")
                span.set_attribute("authz.decided_by", decision.decided_by.value)
            if metrics is not None:
                (metrics.check_allowed if decision.allowed else metrics.check_denied).observe(
                    elapsed
                )
        if log is not None:
            log.sink(
                DecisionEvent.of(
                    subject=compiled.key,
                    action=action,
                    obj=obj,
                    decision=decision,
                    latency=timedelta(seconds=elapsed),
                    decided_at=self._clock.now(),
                )
            )
        return decision

    def explain(self, compiled: CompiledSubject, action: str, obj: object) -> Explanation:
        self._require_current(compiled, "explain")
        obj = self._read(obj)
        with self._tracer.start_as_current_span("authz.explain") as span:
            span.set_attribute("authz.action", action)
            span.set_attribute("authz.object_type", obj.type)
            try:
                result = explain(compiled, action, obj)
            except WatchwordError:
                if self._metrics is not None:
                    self._metrics.count_error("explain")
                span.set_attribute("authz.outcome", "error")
                raise
            span.set_attribute("authz.outcome", "allowed" if result.decision.allowed else "denied")
            return result

    def prepare(self, compiled: CompiledSubject, action: str, type_name: str) -> Prepared:
        """Residual predicate for every object of ``type_name``; always timed and traced."""
        self._require_current(compiled, "prepare")
        metrics = self._metrics
        start = time.perf_counter()
        with self._tracer.start_as_current_span("authz.prepare") as span:
            span.set_attribute("authz.action", action)
            span.set_attribute("authz.object_type", type_name)
            _subject_attributes(span, compiled)
            try:
                prepared = prepare(compiled, action, type_name)
            except WatchwordError:
                if metrics is not None:
                    metrics.prepare_error.observe(time.perf_counter() - start)
                    metrics.count_error("prepare")
                span.set_attribute("authz.outcome", "error")
                raise
            elapsed = time.perf_counter() - start
            span.set_attribute("authz.residual_nodes", prepared.node_count)
            span.set_attribute("authz.outcome", "ok")
        if metrics is not None:
            metrics.prepare_ok.observe(elapsed)
        return prepared

    def filter(
        self,
        compiled: CompiledSubject,
        action: str,
        objects: Iterable[T],
        *,
        prepare_from: int = FILTER_PREPARE_THRESHOLD,
    ) -> list[T]:
        """The objects ``action`` is allowed on, in their order: :class:`Object` values or the
        application's own objects (read through :attr:`objects`), types mixed or not; the
        same objects come back. Checked one by one below ``prepare_from`` objects, through
        :meth:`prepare` (once per type) from there: the same answers either way; the
        default, 1,000, is where ``benchmarks/authz/crossover.md`` measured the two to cost
        the same."""
        self._require_current(compiled, "filter")
        given: Sequence[Any] = objects if isinstance(objects, Sequence) else list(objects)
        if not given:
            return []
        origin: dict[int, Any] | None = None
        if all(type(o) is Object for o in given):
            items: Sequence[Any] = given
        else:
            items = [self._read(o) for o in given]
            origin = {id(item): o for item, o in zip(items, given, strict=True)}
        metrics = self._metrics
        start = time.perf_counter()
        with self._tracer.start_as_current_span("authz.filter") as span:
            span.set_attribute("authz.action", action)
            span.set_attribute("authz.object_type", items[0].type)
            span.set_attribute("authz.objects", len(items))
            span.set_attribute("authz.prepared", len(items) >= prepare_from)
            try:
                kept = filter_objects(compiled, action, items, prepare_from=prepare_from)
            except WatchwordError:
                if metrics is not None:
                    metrics.filter_duration.labels(outcome="error").observe(
                        time.perf_counter() - start
                    )
                    metrics.count_error("filter")
                span.set_attribute("authz.outcome", "error")
                raise
            span.set_attribute("authz.objects_kept", len(kept))
            span.set_attribute("authz.outcome", "ok")
        if metrics is not None:
            metrics.filter_duration.labels(outcome="ok").observe(time.perf_counter() - start)
        if origin is not None:  # what was given: the app's objects, Objects, views
            return [origin[id(o)] for o in kept]
        return kept  # type: ignore[return-value]


def _subject_attributes(span: trace.Span, compiled: CompiledSubject) -> None:
    """The subject's size, counted without walking its memberships (O(1))."""
    subject = compiled.subject
    span.set_attribute("authz.subject_global_roles", len(subject.global_roles))
    span.set_attribute("authz.subject_organizations", len(subject.organizations))
    span.set_attribute("authz.subject_projects", len(subject.projects))
    span.set_attribute("authz.subject_groups", len(subject.groups))
