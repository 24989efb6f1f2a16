"""Join-table ACLs and integer ids in SQL.

- The equivalence property of test_equivalence.py (rows the SQL selects == objects the
  reference, ``check`` and ``Prepared.matches`` accept), for the join-table ACL with text
  and with integer ids, on SQLite and PostgreSQL, with and without the PostgreSQL index copy.
- The residual-tree property of test_residual.py carried to SQL: random trees, including
  negated ACL tests and NULL object ids in the ACL table, over text and integer columns.
- The plan PostgreSQL picks for a selective subject: the ACL index, and no scan of the
  application's table (EXPLAIN (FORMAT JSON); no timing).
- Rendering details: integer parameters typed from the column, values that are not an
  integer's canonical text matching nothing, the uncorrelated subquery.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    MetaData,
    String,
    Table,
    Uuid,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from tests.authz.test_equivalence import (
    ObjectSpec,
    SubjectSpec,
    World,
    ref_decide,
    to_object,
    to_policy,
    to_subject,
    worlds,
)

from watchword.authz import (
    AclTable,
    ColumnMapping,
    JsonAcl,
    Object,
    Prepared,
    check,
    compile_subject,
    parse_policy,
    parse_subject,
    prepare,
    render_sql,
    residual_to_sql,
)
from watchword.authz.residual import (
    AclHas,
    AclKind,
    Eq,
    Field,
    In,
    IsNull,
    Node,
    acl_has,
    all_of,
    any_of,
    equals,
    evaluate_residual,
    is_in,
    negate,
)
from watchword.storage.db import create_engine_for_url

SETTINGS = settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# Tables ---------------------------------------------------------------------------------------


def make_tables(prefix: str, ids: str) -> tuple[MetaData, Table, Table]:
    """The application table and its ACL table, with text or integer (BIGINT) ids."""
    md = MetaData()
    id_type = String if ids == "text" else BigInteger
    items = Table(
        f"{prefix}_items",
        md,
        Column("id", id_type, primary_key=True),
        Column("type", String, nullable=False),
        Column("org_id", id_type, index=True),
        Column("project_id", id_type, index=True),
        Column("owner", String, index=True),
        Column("acl_users", JSON().with_variant(JSONB(), "postgresql")),
        Column("acl_groups", JSON().with_variant(JSONB(), "postgresql")),
    )
    acl = Table(
        f"{prefix}_acl",
        md,
        Column("object_id", id_type, nullable=True),  # NULLs: see the residual property
        Column("kind", String, nullable=False),
        Column("key", String, nullable=False),
        Column("action", String, nullable=False),
    )
    return md, items, acl


def mappings(items: Table, acl: Table, dialect: str) -> dict[str, ColumnMapping]:
    def mapping(acl_map: JsonAcl | AclTable, *, arrays: bool = False) -> ColumnMapping:
        return ColumnMapping(
            id=items.c.id,
            org_id=items.c.org_id,
            project_id=items.c.project_id,
            owner=items.c.owner,
            acl=acl_map,
            array_params=arrays,
        )

    cols = (acl, acl.c.object_id, acl.c.kind, acl.c.key, acl.c.action)
    out = {
        "table": mapping(AclTable(*cols)),
        "json": mapping(JsonAcl(items.c.acl_users, items.c.acl_groups)),
    }
    if dialect == "postgresql":
        out["table, array_params"] = mapping(AclTable(*cols), arrays=True)
        out["table, no index copy"] = mapping(AclTable(*cols, postgresql_index_copy=False))
    return out


def to_db_id(value: str | None, ids: str) -> object:
    return value if value is None or ids == "text" else int(value)


def item_rows(objects: list[Object], ids: str) -> list[dict[str, object]]:
    return [
        {
            "id": to_db_id(o.id, ids),
            "type": o.type,
            "org_id": to_db_id(o.org_id, ids),
            "project_id": to_db_id(o.project_id, ids),
            "owner": o.owner,
            "acl_users": {k: sorted(v) for k, v in o.acl_users.items()},
            "acl_groups": {k: sorted(v) for k, v in o.acl_groups.items()},
        }
        for o in objects
    ]


def acl_rows(objects: list[Object], ids: str) -> list[dict[str, object]]:
    return [
        {"object_id": to_db_id(o.id, ids), "kind": kind, "key": k, "action": a}
        for o in objects
        for kind, entries in (("user", o.acl_users), ("group", o.acl_groups))
        for k, acts in entries.items()
        for a in sorted(acts)
    ]


def selected(conn: Connection, items: Table, where: Any, *extra: Any) -> set[str]:
    return {str(i) for i in conn.execute(select(items.c.id).where(*extra, where)).scalars()}


# The world property with integer ids -----------------------------------------------------------

# Objects are stored with canonical integer text; the subject's side also holds spellings
# that are no integer's canonical text ("+4", "01"): equal to no stored id, in Python as in SQL.
OBJECT_ORG = {"o1": "1", "o2": "2", "o3": "3", "o4": "4"}
SUBJECT_ORG = {"o1": "1", "o2": "2", "o3": "3", "o4": "+4"}
PROJECT = {"p1": "11", "p2": "12", "p3": "13", "p4": "14"}


def object_id(spec_id: str) -> str:
    return str(int(spec_id.removeprefix("x")) + 1)


def allow_listed_id(spec_id: str) -> str:
    return {"*": "*", "x0": "01"}.get(spec_id) or object_id(spec_id)


def integer_world(world: World) -> World:
    """The same world with integer ids (a few subject-side values not canonical)."""
    s = world.subject
    scope = None
    if s.scope is not None:
        names, allow = s.scope
        scope = (names, frozenset((t, allow_listed_id(i)) for t, i in allow))
    subject = replace(
        s,
        organizations={SUBJECT_ORG[o]: r for o, r in s.organizations.items()},
        projects={PROJECT[p]: r for p, r in s.projects.items()},
        scope=scope,
    )
    objects = [
        replace(
            o,
            id=object_id(o.id),
            org=None if o.org is None else OBJECT_ORG[o.org],
            project=None if o.project is None else PROJECT[o.project],
        )
        for o in world.objects
    ]
    return replace(world, subject=subject, objects=objects)


def run_world_property(conn: Connection, ids: str) -> None:
    md, items, acl = make_tables(f"aclw_{secrets.token_hex(4)}", ids)
    md.create_all(conn)
    maps = mappings(items, acl, conn.dialect.name)

    @SETTINGS
    @given(worlds(max_objects=16), st.data())
    def prop(drawn: World, data: st.DataObject) -> None:
        world = drawn if ids == "text" else integer_world(drawn)
        conn.execute(items.delete())
        conn.execute(acl.delete())
        objects = [to_object(o) for o in world.objects]
        conn.execute(insert(items), item_rows(objects, ids))
        if rows := acl_rows(objects, ids):
            conn.execute(insert(acl), rows)
        compiled = compile_subject(to_policy(world), to_subject(world.subject))
        type_name = data.draw(st.sampled_from(sorted(world.types)))
        for action in sorted(world.types[type_name]):
            prepared = prepare(compiled, action, type_name)
            expected = {
                o.id
                for o in world.objects
                if o.type == type_name and ref_decide(world, action, o)[0]
            }
            of_type = [o for o in objects if o.type == type_name]
            assert expected == {o.id for o in of_type if prepared.matches(o)}
            assert expected == {o.id for o in of_type if check(compiled, action, o).allowed}
            for name, mapping in maps.items():
                got = selected(conn, items, prepared.to_sql(mapping), items.c.type == type_name)
                assert got == expected, (name, action, prepared.to_dict())

    prop()


@pytest.mark.parametrize("ids", ["text", "integer"])
async def test_sql_when_random_world_with_acl_table_on_sqlite_selects_reference_rows(
    sqlite_engine: Any, ids: str
) -> None:
    async with sqlite_engine.begin() as conn:
        await conn.run_sync(lambda c: run_world_property(c, ids))


@pytest.mark.postgres
@pytest.mark.parametrize("ids", ["text", "integer"])
async def test_sql_when_random_world_with_acl_table_on_postgres_selects_reference_rows(
    pg_url: str, ids: str
) -> None:
    engine = create_engine_for_url(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: run_world_property(c, ids))
    finally:
        await engine.dispose()


def test_integer_world_keeps_subject_and_objects_consistent() -> None:
    """The translation itself: canonical ids on the objects, a few non-canonical spellings
    on the subject's side only."""
    subject = SubjectSpec(
        "alice",
        frozenset(),
        {"o4": frozenset({"r0"}), "o1": frozenset()},
        {"p2": frozenset()},
        frozenset(),
        (frozenset({"*:*"}), frozenset({("*", "x0"), ("*", "x3"), ("*", "*")})),
    )
    obj = ObjectSpec("t", "x3", "o4", "p2", None, {}, {})
    world = integer_world(World({"t": frozenset({"read"})}, {}, subject, [obj]))
    assert world.objects[0].id == "4" and world.objects[0].org == "4"
    assert world.objects[0].project == "12"
    assert set(world.subject.organizations) == {"+4", "1"}
    assert world.subject.scope is not None
    assert world.subject.scope[1] == {("*", "01"), ("*", "4"), ("*", "*")}


# The residual-tree property -------------------------------------------------------------------

VALUES = ("1", "2", "3", "02", "x")  # "02" and "x" are no integer's canonical text
STORED = ("1", "2", "3")
KEYS = ("k1", "k2")
KINDS = ("user", "group")
ACTIONS = ("read", "use")
FIELDS = st.sampled_from(list(Field))
LEAVES: st.SearchStrategy[Node] = st.one_of(
    st.builds(is_in, FIELDS, st.frozensets(st.sampled_from(VALUES), min_size=1, max_size=3)),
    st.builds(equals, FIELDS, st.sampled_from(VALUES)),
    st.builds(IsNull, FIELDS),
    st.builds(
        acl_has,
        st.sampled_from(list(AclKind)),
        st.frozensets(st.sampled_from(KEYS), min_size=1, max_size=2),
        st.sampled_from(ACTIONS),
    ),
)
VALUE_SETS = st.frozensets(st.sampled_from(VALUES), min_size=1, max_size=3)
TREES: st.SearchStrategy[Node] = st.recursive(
    LEAVES,
    lambda kids: st.one_of(
        st.builds(lambda xs: all_of(*xs), st.lists(kids, min_size=2, max_size=3)),
        st.builds(lambda xs: any_of(*xs), st.lists(kids, min_size=2, max_size=3)),
        st.builds(negate, kids),
        # The engine's "allowed here, or not denied here and ..." (the compiler factors the
        # negation out when the sets are disjoint, which they may or may not be here).
        st.builds(
            lambda f, allowed, denied, rest: any_of(
                is_in(f, allowed), all_of(negate(is_in(f, denied)), rest)
            ),
            FIELDS,
            VALUE_SETS,
            VALUE_SETS,
            kids,
        ),
    ),
    max_leaves=8,
)
ACL_ENTRIES = st.dictionaries(
    st.sampled_from(KEYS), st.frozensets(st.sampled_from((*ACTIONS, "*")), max_size=2), max_size=2
)


@st.composite
def objects(draw: st.DrawFn) -> list[Object]:
    return [
        Object(
            "t",
            str(i + 1),
            draw(st.none() | st.sampled_from(STORED)),
            draw(st.none() | st.sampled_from(STORED)),
            draw(st.none() | st.sampled_from(VALUES)),
            acl_users=draw(ACL_ENTRIES),
            acl_groups=draw(ACL_ENTRIES),
        )
        for i in range(draw(st.integers(1, 6)))
    ]


def run_tree_property(conn: Connection, ids: str) -> None:
    md, items, acl = make_tables(f"aclt_{secrets.token_hex(4)}", ids)
    md.create_all(conn)
    maps = mappings(items, acl, conn.dialect.name)

    @settings(SETTINGS, max_examples=150)
    @given(TREES, objects(), st.booleans())
    def prop(tree: Node, objs: list[Object], null_grant: bool) -> None:
        conn.execute(items.delete())
        conn.execute(acl.delete())
        conn.execute(insert(items), item_rows(objs, ids))
        rows = acl_rows(objs, ids)
        if null_grant:  # a grant to no object: IN (SELECT ...) is NULL, not FALSE, beside it
            rows += [{"object_id": None, "kind": k, "key": "k1", "action": "*"} for k in KINDS]
        if rows:
            conn.execute(insert(acl), rows)
        expected = {o.id for o in objs if evaluate_residual(tree, o)}
        for name, mapping in maps.items():
            assert selected(conn, items, residual_to_sql(tree, mapping)) == expected, name

    prop()


@pytest.mark.parametrize("ids", ["text", "integer"])
async def test_sql_when_random_residual_on_sqlite_selects_what_python_accepts(
    sqlite_engine: Any, ids: str
) -> None:
    async with sqlite_engine.begin() as conn:
        await conn.run_sync(lambda c: run_tree_property(c, ids))


@pytest.mark.postgres
@pytest.mark.parametrize("ids", ["text", "integer"])
async def test_sql_when_random_residual_on_postgres_selects_what_python_accepts(
    pg_url: str, ids: str
) -> None:
    engine = create_engine_for_url(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: run_tree_property(c, ids))
    finally:
        await engine.dispose()


# The plan on PostgreSQL -----------------------------------------------------------------------

PLAN_POLICY = parse_policy(
    {
        "resource_types": [{"name": "t", "actions": ["read", "delete"]}],
        "roles": [
            {
                "name": "member",
                "permissions": {
                    "organization": [{"resource_type": "t", "actions": ["read"]}],
                    "owner": [{"resource_type": "t", "actions": ["*"]}],
                },
            }
        ],
    }
)


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


@pytest.fixture
def plan_db(pg_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


@pytest.mark.postgres
@pytest.mark.parametrize("ids", ["text", "integer"])
@pytest.mark.parametrize("action", ["read", "delete"])
def test_acl_table_on_postgres_when_subject_selective_uses_the_acl_index_not_a_table_scan(
    plan_db: psycopg.Connection[Any], ids: str, action: str
) -> None:
    prefix = f"aclp_{secrets.token_hex(4)}"
    _, items, acl = make_tables(prefix, ids)
    t = "text" if ids == "text" else "bigint"

    def i(expr: str, letter: str) -> str:
        return f"'{letter}' || ({expr})" if ids == "text" else f"({expr})"

    conn = plan_db
    conn.execute(
        f"CREATE TABLE {prefix}_items (id {t} PRIMARY KEY, type text NOT NULL, org_id {t}, "
        f"project_id {t}, owner text, acl_users jsonb, acl_groups jsonb)"
    )
    conn.execute(
        f"INSERT INTO {prefix}_items (id, type, org_id, project_id, owner) "
        f"SELECT {i('g', 'c')}, 't', {i('g % 1000', 'o')}, {i('g % 5000', 'p')}, "
        "'https://i|u' || (g % 5000) FROM generate_series(1, 100000) AS g"
    )
    conn.execute(
        f"CREATE TABLE {prefix}_acl (object_id {t}, kind text NOT NULL, key text NOT NULL, "
        "action text NOT NULL)"
    )
    conn.execute(
        f"INSERT INTO {prefix}_acl SELECT {i('g', 'c')}, "
        "CASE WHEN g % 3 = 0 THEN 'group' ELSE 'user' END, "
        "CASE WHEN g % 3 = 0 THEN 'g' || (g % 200) ELSE 'https://i|u' || (g % 5000) END, "
        "CASE WHEN g % 2 = 0 THEN 'read' ELSE 'delete' END FROM generate_series(1, 100000) AS g"
    )
    for stmt in (
        f"CREATE INDEX {prefix}_org ON {prefix}_items (org_id)",
        f"CREATE INDEX {prefix}_owner ON {prefix}_items (owner)",
        f"CREATE INDEX {prefix}_grant ON {prefix}_acl (kind, key, action, object_id)",
        f"ANALYZE {prefix}_items",
        f"ANALYZE {prefix}_acl",
    ):
        conn.execute(stmt)
    try:
        org = "o" if ids == "text" else ""
        subject = parse_subject(
            {
                "issuer": "https://i",
                "id": "u7",
                "organizations": {f"{org}1": ["member"], f"{org}2": ["member"]},
                "groups": ["g3"],
            }
        )
        prepared = prepare(compile_subject(PLAN_POLICY, subject), action, "t")
        expected = count_matching(conn, prefix, prepared)
        table_acl = mappings(items, acl, "postgresql")
        for name in ("table", "table, array_params", "table, no index copy"):
            rendered = render_sql(prepared.to_sql(table_acl[name]), "postgresql", "pyformat")
            sql = f"SELECT count(*) FROM {prefix}_items WHERE type = 't' AND ({rendered.sql})"
            row = conn.execute("EXPLAIN (FORMAT JSON) " + sql, rendered.params).fetchone()
            assert row is not None
            doc = row[0] if isinstance(row[0], list) else json.loads(row[0])
            nodes = list(plan_nodes(doc[0]["Plan"]))
            used = {(n["Node Type"], n.get("Index Name")) for n in nodes}
            # Every grant test reads the (kind, key, action, object_id) index.
            assert any(n.get("Index Name") == f"{prefix}_grant" for n in nodes), (name, used)
            acl_scans = {n["Node Type"] for n in nodes if n.get("Relation Name") == f"{prefix}_acl"}
            assert acl_scans and "Seq Scan" not in acl_scans, (name, used)
            if name != "table, no index copy":
                # The index copy lets the whole OR come from indexes (a BitmapOr with the
                # primary key for the granted ids), not a scan of the table.
                assert ("Bitmap Index Scan", f"{prefix}_items_pkey") in used, (name, used)
                assert not any(
                    n["Node Type"] == "Seq Scan" and n.get("Relation Name") == f"{prefix}_items"
                    for n in nodes
                ), (name, used)
            got = conn.execute(sql, rendered.params).fetchone()
            assert got is not None and got[0] == expected > 0, name
    finally:
        conn.execute(f"DROP TABLE {prefix}_items, {prefix}_acl")


def count_matching(conn: psycopg.Connection[Any], prefix: str, prepared: Prepared) -> int:
    """How many rows ``prepared.matches``, each row read as an Object with its grants to
    the subject (the other grants cannot matter)."""
    users: dict[str, dict[str, set[str]]] = {}
    groups: dict[str, dict[str, set[str]]] = {}
    for object_id_, kind, key, action in conn.execute(
        f"SELECT object_id::text, kind, key, action FROM {prefix}_acl "
        "WHERE key IN ('https://i|u7', 'g3')"
    ):
        acl = users if kind == "user" else groups
        acl.setdefault(object_id_, {}).setdefault(key, set()).add(action)
    rows = conn.execute(f"SELECT id::text, org_id::text, owner FROM {prefix}_items")
    return sum(
        prepared.matches(
            Object(
                "t",
                i,
                org,
                None,
                owner,
                acl_users=users.get(i, {}),
                acl_groups=groups.get(i, {}),
            )
        )
        for i, org, owner in rows
    )


# Rendering ------------------------------------------------------------------------------------

md_int = MetaData()
items_int = Table(
    "items_int",
    md_int,
    Column("id", BigInteger, primary_key=True),
    Column("org_id", BigInteger),
    Column("project_id", BigInteger),
    Column("owner", String),
    Column("acl_users", JSONB),
)
acl_int = Table(
    "acl_int",
    md_int,
    Column("object_id", BigInteger),
    Column("kind", String),
    Column("key", String),
    Column("action", String),
)
INT_ACL = AclTable(acl_int, acl_int.c.object_id, acl_int.c.kind, acl_int.c.key, acl_int.c.action)
INT_MAPPING = ColumnMapping(
    id=items_int.c.id,
    org_id=items_int.c.org_id,
    project_id=items_int.c.project_id,
    owner=items_int.c.owner,
    acl=INT_ACL,
)


def test_render_sql_when_integer_columns_binds_integers_and_drops_non_canonical_values() -> None:
    residual = any_of(
        In(Field.ORG_ID, frozenset({"7", "007", "x", "-3", "-0", "٣"})),
        all_of(Eq(Field.OWNER, "https://i|me"), negate(In(Field.PROJECT_ID, frozenset({"9"})))),
        Eq(Field.ID, "12"),
    )
    rendered = render_sql(residual_to_sql(residual, INT_MAPPING), "postgresql")
    assert rendered.sql == (
        "items_int.org_id IN (:org_id_1_1::BIGINT, :org_id_1_2::BIGINT) OR "
        "items_int.owner = :owner_1::VARCHAR AND (items_int.project_id IS NULL OR "
        "(items_int.project_id NOT IN (:project_id_1_1::BIGINT))) OR items_int.id = :id_1::BIGINT"
    )
    assert dict(rendered.params) == {
        "org_id_1_1": -3,
        "org_id_1_2": 7,
        "owner_1": "https://i|me",
        "project_id_1_1": 9,
        "id_1": 12,
    }
    arrays = replace(INT_MAPPING, array_params=True)
    rendered = render_sql(residual_to_sql(residual, arrays), "postgresql")
    assert rendered.sql.startswith("items_int.org_id = ANY (:param_1::BIGINT[])")
    assert rendered.params["param_1"] == [-3, 7]


def test_render_sql_when_no_value_fits_an_integer_column_is_constant() -> None:
    nothing = any_of(In(Field.ORG_ID, frozenset({"a", "01"})), Eq(Field.ID, " 5"))
    assert render_sql(residual_to_sql(nothing, INT_MAPPING), "sqlite").sql == "0 = 1"
    everything = all_of(negate(In(Field.ORG_ID, frozenset({"a"}))), negate(Eq(Field.ID, "+5")))
    assert render_sql(residual_to_sql(everything, INT_MAPPING), "postgresql").sql == "true"


def test_acl_table_when_rendered_is_an_uncorrelated_subquery_and_copied_on_postgres_only() -> None:
    residual = any_of(
        In(Field.ORG_ID, frozenset({"1"})), AclHas(AclKind.GROUPS, frozenset({"g1"}), "read")
    )
    cond = residual_to_sql(residual, INT_MAPPING)
    lite = render_sql(cond, "sqlite").sql
    assert lite == (
        "(items_int.org_id IN (:org_id_1_1) OR items_int.id IN (SELECT acl_int.object_id \n"
        'FROM acl_int \nWHERE acl_int.kind = :kind_1 AND acl_int."key" = :key_1 AND '
        "acl_int.action IN (:action_1_1, :action_1_2)))"
    )
    pg = render_sql(cond, "postgresql").sql
    assert pg.count("IN (SELECT acl_int.object_id") == 1
    assert pg.count("items_int.id = ANY (ARRAY(SELECT acl_int.object_id") == 1
    no_copy = replace(INT_MAPPING, acl=replace(INT_ACL, postgresql_index_copy=False))
    plain = render_sql(residual_to_sql(residual, no_copy), "postgresql").sql
    assert "ARRAY" not in plain and "IN (SELECT acl_int.object_id" in plain
    # A bare ACL test (no OR around it) is a semi-join PostgreSQL plans well: no copy.
    bare = residual_to_sql(AclHas(AclKind.USERS, frozenset({"k"}), "read"), INT_MAPPING)
    assert "ARRAY" not in render_sql(bare, "postgresql").sql
    # An outer query over the ACL table does not correlate the subquery away.
    joined = select(items_int.c.id).join(acl_int, acl_int.c.object_id == items_int.c.id)
    text = str(joined.where(cond).compile(dialect=sqlite.dialect()))
    assert "IN (SELECT acl_int.object_id \nFROM acl_int \nWHERE" in text


def test_json_acl_when_alone_in_where_still_names_its_table() -> None:
    mapping = ColumnMapping(id=items_int.c.id, acl=JsonAcl(users=items_int.c.acl_users))
    cond = residual_to_sql(AclHas(AclKind.USERS, frozenset({"k"}), "read"), mapping)
    dialect = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
    text = str(select(func.count()).where(cond).compile(dialect=dialect))
    assert "FROM items_int" in text


def test_residual_to_sql_when_allowed_and_denied_sets_disjoint_tests_the_denial_first() -> None:
    mapping = replace(INT_MAPPING, acl=JsonAcl(users=items_int.c.acl_users))
    acl_term = AclHas(AclKind.USERS, frozenset({"k"}), "delete")
    disjoint = any_of(
        In(Field.ORG_ID, frozenset({"1"})),
        all_of(negate(In(Field.ORG_ID, frozenset({"2"}))), acl_term),
    )
    sql = render_sql(residual_to_sql(disjoint, mapping), "sqlite").sql
    assert sql.startswith(
        "(items_int.org_id IS NULL OR (items_int.org_id NOT IN (:org_id_1_1))) AND "
        "(items_int.org_id IN (:org_id_2_1) OR EXISTS"
    )
    overlapping = any_of(
        In(Field.ORG_ID, frozenset({"1", "2"})),
        all_of(negate(In(Field.ORG_ID, frozenset({"2"}))), acl_term),
    )
    sql = render_sql(residual_to_sql(overlapping, mapping), "sqlite").sql
    assert sql.startswith("items_int.org_id IN (:org_id_1_1, :org_id_1_2) OR")


def test_render_sql_when_index_copy_repeats_a_list_binds_it_once_in_every_style() -> None:
    residual = any_of(
        In(Field.ORG_ID, frozenset({"1", "2", "3"})),
        AclHas(AclKind.GROUPS, frozenset({"g1", "g2"}), "read"),
    )
    cond = residual_to_sql(residual, INT_MAPPING)
    named = render_sql(cond, "postgresql")
    assert named.sql.count("items_int.org_id IN (:org_id_1_1::BIGINT") == 2
    assert named.sql.count("acl_int.key IN (:key_1_1::VARCHAR") == 2
    dollar = render_sql(cond, "postgresql", "numeric_dollar")
    assert {f"${i + 1}" for i in range(len(dollar.param_order))} == set(
        re.findall(r"\$\d+", dollar.sql)
    )
    assert len(set(dollar.param_order)) == len(dollar.param_order) == len(named.params)
    qmark = render_sql(cond, "postgresql", "qmark")
    assert qmark.sql.count("?") == len(qmark.param_order) > len(named.params)
    assert [qmark.params[n] for n in qmark.param_order][:3] == [1, 2, 3]


def test_render_sql_when_uuid_column_binds_uuids_and_drops_non_canonical_spellings() -> None:
    md = MetaData()
    things = Table("things", md, Column("id", Uuid(as_uuid=True)), Column("org_id", Uuid()))
    mapping = ColumnMapping(id=things.c.id, org_id=things.c.org_id, acl=None)
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    residual = any_of(
        In(Field.ID, frozenset({str(u), str(u).upper(), "x"})), Eq(Field.ORG_ID, "{" + str(u) + "}")
    )
    rendered = render_sql(residual_to_sql(residual, mapping), "postgresql")
    assert rendered.sql == "things.id IN (:id_1_1::UUID)"
    assert dict(rendered.params) == {"id_1_1": u}
