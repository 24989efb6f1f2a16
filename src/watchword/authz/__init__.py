"""watchword's authorization engine: compile a subject once, then check, explain, prepare,
filter and compile to SQL, with check, filter and SQL always agreeing.

Quick start::

    from watchword.authz import Engine, Object, parse_policy, parse_subject

    engine = Engine(parse_policy(policy_doc), metrics=AuthzMetrics(registry))
    alice = engine.compile(parse_subject(subject_doc))
    engine.check(alice, "read", Object("compute:clusters", "c1", org_id="acme")).allowed
    prepared = engine.prepare(alice, "read", "compute:clusters")
    session.execute(select(clusters).where(prepared.to_sql(ColumnMapping(...))))

The rules are in ``docs/authz.md``. The pure core (``model``, ``compile``, ``evaluate``,
``residual``, ``explain``, ``parse``) does no I/O; ``engine``, ``metrics``, ``decisionlog``
and ``sql`` are the shell around it.
"""

from watchword.authz.compile import CompiledSubject, compile_subject
from watchword.authz.decisionlog import DecisionEvent, DecisionLog, DecisionSink
from watchword.authz.engine import DEFAULT_OBSERVE_EVERY, TRACER_NAME, Engine
from watchword.authz.evaluate import Prepared, check, filter_objects, prepare
from watchword.authz.explain import Explanation, Match, ScopeReport, StageReport, Verdict, explain
from watchword.authz.mapping import ObjectMapping, ObjectMappings, ObjectView, as_object
from watchword.authz.metrics import BUCKETS, AuthzMetrics
from watchword.authz.model import (
    WILDCARD,
    AccountType,
    DecidedBy,
    Decision,
    Effect,
    Level,
    Object,
    Permission,
    Policy,
    ProjectMembership,
    Registry,
    ResourceType,
    Role,
    Subject,
    TokenScope,
    subject_key,
)
from watchword.authz.parse import (
    parse_object,
    parse_policy,
    parse_resource_type,
    parse_role,
    parse_subject,
)
from watchword.authz.policytest import (
    CaseResult,
    PolicyTestReport,
    run_policy_test,
    run_policy_test_text,
)
from watchword.authz.residual import (
    FALSE,
    TRUE,
    AclHas,
    AclKind,
    And,
    Eq,
    Field,
    In,
    IsNull,
    Node,
    Not,
    Or,
    node_count,
    residual_from_dict,
    residual_to_dict,
)
from watchword.authz.sql import (
    NO_ACL,
    AclTable,
    ColumnMapping,
    JsonAcl,
    NoAcl,
    RenderedSql,
    SqlCondition,
    render_sql,
    residual_to_sql,
)
from watchword.errors import StaleSubject, UnknownRole

__all__ = [
    # values
    "WILDCARD", "AccountType", "DecidedBy", "Decision", "Effect", "Level", "Object",
    "Permission", "Policy", "ProjectMembership", "Registry", "ResourceType", "Role", "Subject",
    "TokenScope", "subject_key",
    # errors authz raises (defined in watchword.errors)
    "StaleSubject", "UnknownRole",
    # the application's own objects, read through a declared mapping
    "ObjectMapping", "ObjectMappings", "ObjectView", "as_object",
    # parsing (JSON-shaped documents, errors carry a JSON pointer)
    "parse_object", "parse_policy", "parse_resource_type", "parse_role", "parse_subject",
    # the engine and its pure functions
    "Engine", "DEFAULT_OBSERVE_EVERY", "TRACER_NAME", "CompiledSubject", "compile_subject",
    "check", "explain", "prepare", "filter_objects", "Prepared",
    "Explanation", "Match", "ScopeReport", "StageReport", "Verdict",
    # residual predicates
    "Node", "TRUE", "FALSE", "And", "Or", "Not", "In", "Eq", "IsNull", "AclHas", "AclKind",
    "Field", "node_count", "residual_from_dict", "residual_to_dict",
    # SQL
    "ColumnMapping", "JsonAcl", "AclTable", "NO_ACL", "NoAcl", "SqlCondition", "residual_to_sql",
    "render_sql", "RenderedSql",
    # observability
    "AuthzMetrics", "BUCKETS", "DecisionEvent", "DecisionLog", "DecisionSink",
    # policy tests
    "run_policy_test", "run_policy_test_text", "PolicyTestReport", "CaseResult",
]  # fmt: skip
