"""Golden SQL for representative residuals (both dialects) and the adapter's refusals."""

# ruff: noqa: E501  (golden SQL is kept as the single line the renderer produces)

from __future__ import annotations

import pytest
from sqlalchemy import JSON, Column, MetaData, String, Table
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.postgresql import JSONB

from watchword.authz import (
    FALSE,
    NO_ACL,
    TRUE,
    AclTable,
    ColumnMapping,
    CompiledSubject,
    JsonAcl,
    NoAcl,
    compile_subject,
    parse_policy,
    parse_subject,
    prepare,
    render_sql,
    residual_to_sql,
)
from watchword.errors import UnsupportedPredicate

md = MetaData()
items = Table(
    "items",
    md,
    Column("id", String, primary_key=True),
    Column("org_id", String),
    Column("project_id", String),
    Column("owner", String),
    Column("acl_users", JSON().with_variant(JSONB(), "postgresql")),
    Column("acl_groups", JSON().with_variant(JSONB(), "postgresql")),
)
acl = Table(
    "item_acl",
    md,
    Column("object_id", String),
    Column("kind", String),
    Column("key", String),
    Column("action", String),
)


def columns(
    acl: JsonAcl | AclTable | NoAcl | None = None, *, arrays: bool = False
) -> ColumnMapping:
    return ColumnMapping(
        id=items.c.id,
        org_id=items.c.org_id,
        project_id=items.c.project_id,
        owner=items.c.owner,
        acl=acl,
        array_params=arrays,
    )


MAPPINGS = {
    "json": columns(JsonAcl(items.c.acl_users, items.c.acl_groups)),
    "table": columns(
        AclTable(acl, acl.c.object_id, acl.c.kind, acl.c.key, acl.c.action), arrays=True
    ),
}
POLICY = parse_policy(
    {
        "resource_types": [{"name": "compute:clusters", "actions": ["read", "delete"]}],
        "roles": [
            {"name": "admin", "permissions": {"organization": [{"resource_type": "*", "actions": ["*"]}]}},
            {"name": "member", "permissions": {
                "organization": [{"resource_type": "*", "actions": ["read"]}],
                "owner": [{"resource_type": "*", "actions": ["*"]}]}},
            {"name": "no-delete", "permissions": {"organization": [
                {"resource_type": "*", "actions": ["delete"], "effect": "deny"}]}},
            {"name": "root", "permissions": {"global": [{"resource_type": "*", "actions": ["*"]}]}},
        ],
    }
)  # fmt: skip


def alice(**extra: object) -> CompiledSubject:
    doc = {
        "issuer": "https://i",
        "id": "alice",
        "organizations": {"o1": ["admin"], "o2": ["member"], "o3": ["admin", "no-delete"]},
        "groups": ["g1", "g2"],
        **extra,
    }
    return compile_subject(POLICY, parse_subject(doc))


# Generated once from the renderer, then read and checked by hand against docs/authz.md.
GOLDEN = [
    (
        "read",
        "json",
        "postgresql",
        "items.org_id IN (:org_id_1_1::VARCHAR, :org_id_1_2::VARCHAR, :org_id_1_3::VARCHAR) OR items.owner = :owner_1::VARCHAR AND items.org_id IN (:org_id_2_1::VARCHAR) OR (items.acl_users @> CAST(:acl_doc_1::VARCHAR AS JSONB) OR items.acl_users @> CAST(:acl_doc_2::VARCHAR AS JSONB)) OR (items.acl_groups @> CAST(:acl_doc_3::VARCHAR AS JSONB) OR items.acl_groups @> CAST(:acl_doc_4::VARCHAR AS JSONB)) OR (items.acl_groups @> CAST(:acl_doc_5::VARCHAR AS JSONB) OR items.acl_groups @> CAST(:acl_doc_6::VARCHAR AS JSONB))",
        {
            "owner_1": "https://i|alice",
            "acl_doc_1": '{"https://i|alice": ["read"]}',
            "acl_doc_2": '{"https://i|alice": ["*"]}',
            "acl_doc_3": '{"g1": ["read"]}',
            "acl_doc_4": '{"g1": ["*"]}',
            "acl_doc_5": '{"g2": ["read"]}',
            "acl_doc_6": '{"g2": ["*"]}',
            "org_id_1_1": "o1",
            "org_id_1_2": "o2",
            "org_id_1_3": "o3",
            "org_id_2_1": "o2",
        },
    ),
    (
        "read",
        "json",
        "sqlite",
        "items.org_id IN (:org_id_1_1, :org_id_1_2, :org_id_1_3) OR items.owner = :owner_1 AND items.org_id IN (:org_id_2_1) OR EXISTS (SELECT 1 FROM json_each(items.acl_users) AS acl_k, json_each(acl_k.value) AS acl_a WHERE acl_k.key = :acl_key_1 AND acl_a.value IN (:acl_action_1, '*')) = 1 OR EXISTS (SELECT 1 FROM json_each(items.acl_groups) AS acl_k, json_each(acl_k.value) AS acl_a WHERE acl_k.key = :acl_key_2 AND acl_a.value IN (:acl_action_2, '*')) = 1 OR EXISTS (SELECT 1 FROM json_each(items.acl_groups) AS acl_k, json_each(acl_k.value) AS acl_a WHERE acl_k.key = :acl_key_3 AND acl_a.value IN (:acl_action_3, '*')) = 1",
        {
            "owner_1": "https://i|alice",
            "acl_key_1": "https://i|alice",
            "acl_action_1": "read",
            "acl_key_2": "g1",
            "acl_action_2": "read",
            "acl_key_3": "g2",
            "acl_action_3": "read",
            "org_id_1_1": "o1",
            "org_id_1_2": "o2",
            "org_id_1_3": "o3",
            "org_id_2_1": "o2",
        },
    ),
    (
        "read",
        "table",
        "postgresql",
        "((items.org_id = ANY (:param_1::VARCHAR[]) OR items.owner = :owner_1::VARCHAR AND items.org_id = ANY (:param_2::VARCHAR[]) OR items.id IN (SELECT item_acl.object_id \nFROM item_acl \nWHERE item_acl.kind = :kind_1::VARCHAR AND item_acl.key = :key_1::VARCHAR AND item_acl.action IN (:action_1_1::VARCHAR, :action_1_2::VARCHAR)) OR items.id IN (SELECT item_acl.object_id \nFROM item_acl \nWHERE item_acl.kind = :kind_2::VARCHAR AND item_acl.key = ANY (:param_3::VARCHAR[]) AND item_acl.action IN (:action_2_1::VARCHAR, :action_2_2::VARCHAR))) AND (items.org_id = ANY (:param_1::VARCHAR[]) OR items.owner = :owner_1::VARCHAR AND items.org_id = ANY (:param_2::VARCHAR[]) OR items.id = ANY (ARRAY(SELECT item_acl.object_id \nFROM item_acl \nWHERE item_acl.kind = :kind_1::VARCHAR AND item_acl.key = :key_1::VARCHAR AND item_acl.action IN (:action_1_1::VARCHAR, :action_1_2::VARCHAR))) OR items.id = ANY (ARRAY(SELECT item_acl.object_id \nFROM item_acl \nWHERE item_acl.kind = :kind_2::VARCHAR AND item_acl.key = ANY (:param_3::VARCHAR[]) AND item_acl.action IN (:action_2_1::VARCHAR, :action_2_2::VARCHAR)))))",
        {
            "param_1": ["o1", "o2", "o3"],
            "owner_1": "https://i|alice",
            "param_2": ["o2"],
            "kind_1": "user",
            "key_1": "https://i|alice",
            "kind_2": "group",
            "param_3": ["g1", "g2"],
            "action_1_1": "read",
            "action_1_2": "*",
            "action_2_1": "read",
            "action_2_2": "*",
        },
    ),
    (
        "delete",
        "json",
        "postgresql",
        "(items.org_id IS NULL OR (items.org_id NOT IN (:org_id_1_1::VARCHAR))) AND (items.org_id IN (:org_id_2_1::VARCHAR) OR items.owner = :owner_1::VARCHAR AND items.org_id IN (:org_id_3_1::VARCHAR) OR (items.acl_users @> CAST(:acl_doc_1::VARCHAR AS JSONB) OR items.acl_users @> CAST(:acl_doc_2::VARCHAR AS JSONB)) OR (items.acl_groups @> CAST(:acl_doc_3::VARCHAR AS JSONB) OR items.acl_groups @> CAST(:acl_doc_4::VARCHAR AS JSONB)) OR (items.acl_groups @> CAST(:acl_doc_5::VARCHAR AS JSONB) OR items.acl_groups @> CAST(:acl_doc_6::VARCHAR AS JSONB)))",
        {
            "owner_1": "https://i|alice",
            "acl_doc_1": '{"https://i|alice": ["delete"]}',
            "acl_doc_2": '{"https://i|alice": ["*"]}',
            "acl_doc_3": '{"g1": ["delete"]}',
            "acl_doc_4": '{"g1": ["*"]}',
            "acl_doc_5": '{"g2": ["delete"]}',
            "acl_doc_6": '{"g2": ["*"]}',
            "org_id_1_1": "o3",
            "org_id_2_1": "o1",
            "org_id_3_1": "o2",
        },
    ),
    (
        "delete",
        "json",
        "sqlite",
        "(items.org_id IS NULL OR (items.org_id NOT IN (:org_id_1_1))) AND (items.org_id IN (:org_id_2_1) OR items.owner = :owner_1 AND items.org_id IN (:org_id_3_1) OR EXISTS (SELECT 1 FROM json_each(items.acl_users) AS acl_k, json_each(acl_k.value) AS acl_a WHERE acl_k.key = :acl_key_1 AND acl_a.value IN (:acl_action_1, '*')) = 1 OR EXISTS (SELECT 1 FROM json_each(items.acl_groups) AS acl_k, json_each(acl_k.value) AS acl_a WHERE acl_k.key = :acl_key_2 AND acl_a.value IN (:acl_action_2, '*')) = 1 OR EXISTS (SELECT 1 FROM json_each(items.acl_groups) AS acl_k, json_each(acl_k.value) AS acl_a WHERE acl_k.key = :acl_key_3 AND acl_a.value IN (:acl_action_3, '*')) = 1)",
        {
            "owner_1": "https://i|alice",
            "acl_key_1": "https://i|alice",
            "acl_action_1": "delete",
            "acl_key_2": "g1",
            "acl_action_2": "delete",
            "acl_key_3": "g2",
            "acl_action_3": "delete",
            "org_id_1_1": "o3",
            "org_id_2_1": "o1",
            "org_id_3_1": "o2",
        },
    ),
    (
        "delete",
        "table",
        "postgresql",
        "((items.org_id IS NULL OR NOT (items.org_id = ANY (:param_1::VARCHAR[]))) AND (items.org_id = ANY (:param_2::VARCHAR[]) OR items.owner = :owner_1::VARCHAR AND items.org_id = ANY (:param_3::VARCHAR[]) OR items.id IN (SELECT item_acl.object_id \nFROM item_acl \nWHERE item_acl.kind = :kind_1::VARCHAR AND item_acl.key = :key_1::VARCHAR AND item_acl.action IN (:action_1_1::VARCHAR, :action_1_2::VARCHAR)) OR items.id IN (SELECT item_acl.object_id \nFROM item_acl \nWHERE item_acl.kind = :kind_2::VARCHAR AND item_acl.key = ANY (:param_4::VARCHAR[]) AND item_acl.action IN (:action_2_1::VARCHAR, :action_2_2::VARCHAR))) AND (items.org_id = ANY (:param_2::VARCHAR[]) OR items.owner = :owner_1::VARCHAR AND items.org_id = ANY (:param_3::VARCHAR[]) OR items.id = ANY (ARRAY(SELECT item_acl.object_id \nFROM item_acl \nWHERE item_acl.kind = :kind_1::VARCHAR AND item_acl.key = :key_1::VARCHAR AND item_acl.action IN (:action_1_1::VARCHAR, :action_1_2::VARCHAR))) OR items.id = ANY (ARRAY(SELECT item_acl.object_id \nFROM item_acl \nWHERE item_acl.kind = :kind_2::VARCHAR AND item_acl.key = ANY (:param_4::VARCHAR[]) AND item_acl.action IN (:action_2_1::VARCHAR, :action_2_2::VARCHAR)))))",
        {
            "param_1": ["o3"],
            "param_2": ["o1"],
            "owner_1": "https://i|alice",
            "param_3": ["o2"],
            "kind_1": "user",
            "key_1": "https://i|alice",
            "kind_2": "group",
            "param_4": ["g1", "g2"],
            "action_1_1": "delete",
            "action_1_2": "*",
            "action_2_1": "delete",
            "action_2_2": "*",
        },
    ),
]


@pytest.mark.parametrize(("action", "mapping", "dialect", "sql", "params"), GOLDEN)
def test_render_sql_when_representative_residual_matches_golden(
    action: str, mapping: str, dialect: str, sql: str, params: dict[str, object]
) -> None:
    prepared = prepare(alice(), action, "compute:clusters")
    rendered = render_sql(prepared.to_sql(MAPPINGS[mapping]), dialect)  # type: ignore[arg-type]
    assert rendered.sql == sql
    assert dict(rendered.params) == params


def test_render_sql_when_global_allow_or_scope_refuses_gives_constants() -> None:
    assert prepare(alice(global_roles=["root"]), "delete", "compute:clusters").residual == TRUE
    scoped = alice(scope={"names": ["compute:clusters:read"]})
    assert prepare(scoped, "delete", "compute:clusters").residual == FALSE
    assert render_sql(residual_to_sql(TRUE, MAPPINGS["json"]), "sqlite").sql == "1 = 1"
    assert render_sql(residual_to_sql(FALSE, MAPPINGS["json"]), "postgresql").sql == "false"


def test_render_sql_when_scope_has_allow_list_filters_ids() -> None:
    scoped = alice(
        global_roles=["root"],
        scope={"names": ["*:*"], "allow_list": [{"type": "compute:clusters", "id": "c1"}]},
    )
    rendered = render_sql(
        prepare(scoped, "read", "compute:clusters").to_sql(MAPPINGS["json"]), "sqlite"
    )
    assert rendered.sql == "items.id IN (:id_1_1)"
    assert dict(rendered.params) == {"id_1_1": "c1"}


def test_render_sql_when_positional_style_orders_params() -> None:
    rendered = render_sql(
        prepare(alice(), "read", "compute:clusters").to_sql(MAPPINGS["table"]),
        "postgresql",
        "numeric_dollar",
    )
    assert rendered.sql.startswith("((items.org_id = ANY ($1::VARCHAR[])")
    assert rendered.params[rendered.param_order[0]] == ["o1", "o2", "o3"]


def test_to_sql_when_mapping_lacks_needed_column_raises() -> None:
    prepared = prepare(alice(), "read", "compute:clusters")
    no_owner = ColumnMapping(id=items.c.id, org_id=items.c.org_id, acl=NO_ACL)
    with pytest.raises(UnsupportedPredicate, match="owner"):
        prepared.to_sql(no_owner)


def test_to_sql_when_acl_mapping_missing_raises_unless_declared_absent() -> None:
    prepared = prepare(alice(), "read", "compute:clusters")
    with pytest.raises(UnsupportedPredicate, match="ACL"):
        prepared.to_sql(columns())
    rendered = render_sql(prepared.to_sql(columns(NO_ACL)), "sqlite")
    assert "acl" not in rendered.sql
    assert (
        rendered.sql
        == "items.org_id IN (:org_id_1_1, :org_id_1_2, :org_id_1_3) OR items.owner = :owner_1 AND items.org_id IN (:org_id_2_1)"
    )


def test_to_sql_when_join_table_acl_without_id_column_raises() -> None:
    prepared = prepare(alice(), "read", "compute:clusters")
    mapping = ColumnMapping(
        org_id=items.c.org_id,
        owner=items.c.owner,
        acl=AclTable(acl, acl.c.object_id, acl.c.kind, acl.c.key, acl.c.action),
    )
    with pytest.raises(UnsupportedPredicate, match="'id'"):
        prepared.to_sql(mapping)


def test_to_sql_when_json_acl_on_other_dialect_raises() -> None:
    cond = prepare(alice(), "read", "compute:clusters").to_sql(MAPPINGS["json"])
    with pytest.raises(UnsupportedPredicate, match="mysql"):
        cond.compile(dialect=mysql.dialect())


def test_render_sql_when_dialect_unknown_raises() -> None:
    with pytest.raises(UnsupportedPredicate):
        render_sql(residual_to_sql(TRUE, MAPPINGS["json"]), "oracle")  # type: ignore[arg-type]
