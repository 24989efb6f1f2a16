"""The declared mapping and the SQLAlchemy integration answer as the reference does.

The random worlds and the reference evaluator are those of ``test_equivalence.py``. Here
the objects are the application's own: rows of an ORM class with integer ids, the owner and
the user-ACL keys held as the application's user ids (``issuer=`` on the mapping), ACLs in a
JSON column or in a join table. For every world: ``Engine.check`` on the rows ==
``Engine.filter`` (a mixed list, both strategies) == ``authorized(select(...))`` on SQLite and
PostgreSQL == the reference.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, Column, Connection, Integer, MetaData, String, Table, insert, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from tests.authz.test_equivalence import (
    ISSUER,
    ObjectSpec,
    World,
    ref_decide,
    to_policy,
    to_subject,
    worlds,
)

from watchword.authz import AclTable, Engine, Object, ObjectMapping, ObjectMappings
from watchword.integrations.sqlalchemy import authorized
from watchword.storage.db import create_engine_for_url


def app_id(key: str | None) -> str | None:
    """A subject key of the world's issuer as the application's user id."""
    if key is None:
        return None
    issuer, _, user = key.partition("|")
    assert issuer == ISSUER
    return user


def numbered(world: World) -> World:
    """The world with integer ids ("x3" → "3"), in its scope allow-list too."""
    objects = [replace(o, id=o.id.removeprefix("x")) for o in world.objects]
    s = world.subject
    scope = None
    if s.scope is not None:
        names, allow = s.scope
        scope = (names, frozenset((t, i.removeprefix("x")) for t, i in allow))
    return replace(world, objects=objects, subject=replace(s, scope=scope))


@dataclass
class Row:
    """An application object: what the app keeps, as it keeps it."""

    id: int
    type: str
    org_id: str | None
    project_id: str | None
    owner_id: str | None
    shares: dict[str, list[str]] = field(default_factory=dict)
    group_shares: dict[str, list[str]] = field(default_factory=dict)


def row_of(o: ObjectSpec) -> Row:
    return Row(
        id=int(o.id),
        type=o.type,
        org_id=o.org,
        project_id=o.project,
        owner_id=app_id(o.owner),
        shares={str(app_id(k)): sorted(v) for k, v in o.acl_users.items()},
        group_shares={k: sorted(v) for k, v in o.acl_groups.items()},
    )


def mapping(**kw: Any) -> ObjectMapping:
    return ObjectMapping(
        **kw,
        organization="org_id",
        project="project_id",
        owner="owner_id",
        acl_users="shares",
        acl_groups="group_shares",
        issuer=ISSUER,
    )


ROWS = mapping(type_from="type")


@settings(max_examples=100, deadline=None)  # CI time; random order does the rest
@given(worlds(), st.randoms(use_true_random=False))
def test_mapped_rows_check_and_filter_as_the_reference(world: World, rng: Any) -> None:
    world = numbered(world)
    engine = Engine(to_policy(world), objects=ObjectMappings({Row: ROWS}))
    compiled = engine.compile(to_subject(world.subject))
    rows = [row_of(o) for o in world.objects]
    for action in sorted(set().union(*world.types.values())):
        expected = []
        for spec, row in zip(world.objects, rows, strict=True):
            if action not in world.types[spec.type]:
                continue
            allowed, stage = ref_decide(world, action, spec)
            decision = engine.check(compiled, action, row)
            assert (decision.allowed, decision.decided_by.value) == (allowed, stage), (spec, action)
            if allowed:
                expected.append(row)
        # A mixed list: rows of every type defining the action, some as Objects.
        asked = [r for r in rows if action in world.types[r.type]]
        as_objects = {id(r): Object(r.type, str(r.id)) for r in asked[::3]}
        mixed: list[Any] = [r for r in asked if id(r) not in as_objects]
        rng.shuffle(mixed)
        for prepare_from in (1, 1000):
            kept = engine.filter(compiled, action, mixed, prepare_from=prepare_from)
            assert [id(k) for k in kept] == [id(r) for r in mixed if r in expected]


def run_sql_property(conn: Connection, *, acl_table: bool) -> None:
    prefix = f"meq_{secrets.token_hex(4)}"
    md = MetaData()
    items = Table(
        f"{prefix}_items",
        md,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("type", String, nullable=False),
        Column("org_id", String, index=True),
        Column("project_id", String, index=True),
        Column("owner_id", String, index=True),
        Column("shares", JSON().with_variant(JSONB(), "postgresql")),
        Column("group_shares", JSON().with_variant(JSONB(), "postgresql")),
    )
    acl = Table(
        f"{prefix}_acl",
        md,
        Column("object_id", Integer, nullable=False, index=True),
        Column("kind", String, nullable=False),
        Column("key", String, nullable=False),
        Column("action", String, nullable=False),
    )
    md.create_all(conn)
    mapper_registry = registry()
    entity = type(f"Item_{prefix}", (), {})
    mapper_registry.map_imperatively(entity, items)
    table_acl = AclTable(acl, acl.c.object_id, acl.c.kind, acl.c.key, acl.c.action)

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(worlds(max_objects=20), st.data())
    def prop(world: World, data: st.DataObject) -> None:
        world = numbered(world)
        conn.execute(items.delete())
        conn.execute(acl.delete())
        rows = [row_of(o) for o in world.objects]
        conn.execute(insert(items), [vars(r) for r in rows])
        grants = [
            {"object_id": r.id, "kind": kind, "key": k, "action": a}
            for r in rows
            for kind, entries in (("user", r.shares), ("group", r.group_shares))
            for k, acts in entries.items()
            for a in acts
        ]
        if grants:
            conn.execute(insert(acl), grants)
        engine = Engine(to_policy(world), objects=ObjectMappings({Row: ROWS}))
        compiled = engine.compile(to_subject(world.subject))
        type_name = data.draw(st.sampled_from(sorted(world.types)))
        for action in sorted(world.types[type_name]):
            expected = [
                r.id
                for r in rows
                if r.type == type_name and engine.check(compiled, action, r).allowed
            ]
            assert expected == [
                int(o.id)
                for o in world.objects
                if o.type == type_name and ref_decide(world, action, o)[0]
            ]
            stmt = authorized(
                select(items.c.id).where(items.c.type == type_name).order_by(items.c.id),
                engine,
                compiled,
                action,
                entity=entity,
                mapping=mapping(type=type_name),
                acl=table_acl if acl_table else None,
            )
            assert list(conn.execute(stmt).scalars()) == expected, (action, type_name)

    prop()
    md.drop_all(conn)


@pytest.mark.parametrize("acl_table", [False, True], ids=["json-acl", "acl-table"])
async def test_authorized_on_sqlite_selects_the_reference_rows(
    sqlite_engine: Any, acl_table: bool
) -> None:
    async with sqlite_engine.begin() as conn:
        await conn.run_sync(lambda c: run_sql_property(c, acl_table=acl_table))


@pytest.mark.postgres
@pytest.mark.parametrize("acl_table", [False, True], ids=["json-acl", "acl-table"])
async def test_authorized_on_postgres_selects_the_reference_rows(
    pg_url: str, acl_table: bool
) -> None:
    engine = create_engine_for_url(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: run_sql_property(c, acl_table=acl_table))
    finally:
        await engine.dispose()
