"""Guard the curated public API of watchword.authz (as httpx's test_exported_members)."""

from __future__ import annotations

import importlib

from watchword import authz

EXPECTED = {
    "WILDCARD", "AccountType", "DecidedBy", "Decision", "Effect", "Level", "Object",
    "Permission", "Policy", "ProjectMembership", "Registry", "ResourceType", "Role", "Subject",
    "TokenScope", "subject_key", "StaleSubject", "UnknownRole", "parse_object", "parse_policy",
    "parse_resource_type", "parse_role", "parse_subject", "Engine", "DEFAULT_OBSERVE_EVERY",
    "TRACER_NAME", "CompiledSubject", "compile_subject", "check", "explain", "prepare",
    "filter_objects", "Prepared", "Explanation", "Match", "ScopeReport", "StageReport",
    "Verdict", "Node", "TRUE", "FALSE", "And", "Or", "Not", "In", "Eq", "IsNull", "AclHas",
    "AclKind", "Field", "node_count", "residual_from_dict", "residual_to_dict",
    "ColumnMapping", "JsonAcl", "AclTable", "NO_ACL", "NoAcl", "SqlCondition", "residual_to_sql",
    "render_sql", "RenderedSql", "AuthzMetrics", "BUCKETS", "DecisionEvent", "DecisionLog",
    "DecisionSink", "run_policy_test", "run_policy_test_text", "PolicyTestReport",
    "CaseResult", "ObjectMapping", "ObjectMappings", "ObjectView", "as_object",
}  # fmt: skip


def test_public_api_when_listed_matches_the_curated_set() -> None:
    assert set(authz.__all__) == EXPECTED
    assert len(authz.__all__) == len(EXPECTED)  # no duplicates
    for name in authz.__all__:
        assert hasattr(authz, name), name


def test_pure_core_when_imported_does_not_import_io_modules() -> None:
    forbidden = (
        "sqlalchemy",
        "prometheus_client",
        "opentelemetry",
        "structlog",
        "asyncio",
        "redis",
    )
    for module in ("model", "compile", "evaluate", "residual", "explain", "parse"):
        source = importlib.import_module(f"watchword.authz.{module}").__loader__.get_source(  # type: ignore[union-attr]
            f"watchword.authz.{module}"
        )
        assert source is not None
        imports = [
            line.strip()
            for line in source.splitlines()
            if line.lstrip().startswith(("import ", "from ")) and "TYPE_CHECKING" not in line
        ]
        for line in imports:
            assert not any(f" {name}" in line.split(" import")[0] for name in forbidden), (
                module,
                line,
            )
