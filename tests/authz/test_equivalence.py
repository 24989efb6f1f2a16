"""check == prepared.matches == reference, and SQL rows == reference rows (SQLite, PostgreSQL).

The reference evaluator below is written straight from the rules in docs/authz.md, over
plain dicts and tuples, and shares no code with the engine: it only reads the generated
specs. Everything random is generated as such a spec and then translated into engine values.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, Column, Connection, MetaData, String, Table, insert, select
from sqlalchemy.dialects.postgresql import JSONB

from watchword.authz.compile import compile_subject
from watchword.authz.evaluate import check, filter_objects, prepare
from watchword.authz.explain import Verdict, explain
from watchword.authz.model import (
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
)
from watchword.authz.parse import parse_subject
from watchword.authz.residual import evaluate_residual
from watchword.authz.sql import AclTable, ColumnMapping, JsonAcl
from watchword.storage.db import create_engine_for_url

# Specs -------------------------------------------------------------------------------------

TYPE_POOL = ("compute:clusters", "identity:projects", "storage:buckets")
ACTION_POOL = ("create", "read", "update", "delete", "use", "share")
LEVELS = ("global", "organization", "project", "owner")
ORGS = ("o1", "o2", "o3", "o4")
PROJECTS = ("p1", "p2", "p3", "p4")
GROUPS = ("g1", "g2", "g3")
ISSUER = "https://id.example"
USERS = ("alice", "bob")
ROLE_NAMES = ("r0", "r1", "r2", "r3", "r4")

PermSpec = tuple[str, frozenset[str], str]  # (type or *, actions or {*}, allow|deny)
RoleSpec = dict[str, list[PermSpec]]  # level -> permissions


@dataclass(frozen=True)
class SubjectSpec:
    user: str
    global_roles: frozenset[str]
    organizations: dict[str, frozenset[str]]
    projects: dict[str, frozenset[str]]  # project id -> role names (to_subject adds the org)
    groups: frozenset[str]
    scope: tuple[frozenset[str], frozenset[tuple[str, str]]] | None


@dataclass(frozen=True)
class ObjectSpec:
    type: str
    id: str
    org: str | None
    project: str | None
    owner: str | None
    acl_users: dict[str, frozenset[str]]
    acl_groups: dict[str, frozenset[str]]


@dataclass(frozen=True)
class World:
    types: dict[str, frozenset[str]]
    roles: dict[str, RoleSpec]
    subject: SubjectSpec
    objects: list[ObjectSpec]


def key_of(user: str) -> str:
    return f"{ISSUER}|{user}"


# Reference evaluator (from the rules; no engine code) ---------------------------------------


def ref_block(world: World, role_names: frozenset[str], level: str, t: str, a: str) -> str | None:
    verdict = None
    for name in role_names:
        for ptype, pactions, effect in world.roles[name].get(level, []):
            if ptype in ("*", t) and ("*" in pactions or a in pactions):
                if effect == "deny":
                    return "deny"
                verdict = "allow"
    return verdict


def ref_decide(world: World, a: str, o: ObjectSpec) -> tuple[bool, str]:
    """(allowed, deciding stage or 'nothing'); the scope may flip allowed to False."""
    s = world.subject
    t = o.type
    org_roles = s.organizations.get(o.org, frozenset()) if o.org is not None else frozenset()
    prj_roles = s.projects.get(o.project, frozenset()) if o.project is not None else frozenset()
    stages: list[tuple[str, str | None]] = [
        ("global", ref_block(world, s.global_roles, "global", t, a)),
        ("organization", ref_block(world, org_roles, "organization", t, a)),
        ("project", ref_block(world, prj_roles, "project", t, a)),
    ]
    if o.owner == key_of(s.user):
        every_role = s.global_roles | org_roles | prj_roles
        stages.append(("owner", ref_block(world, every_role, "owner", t, a)))
    acl = None
    user_entry = o.acl_users.get(key_of(s.user))
    if user_entry is not None and (a in user_entry or "*" in user_entry):
        acl = "allow"
    for group, actions in o.acl_groups.items():
        if group in s.groups and (a in actions or "*" in actions):
            acl = "allow"
    stages.append(("acl", acl))
    allowed, stage = False, "nothing"
    for name, verdict in stages:
        if verdict is not None:
            allowed, stage = verdict == "allow", name
            break
    if s.scope is not None:
        names, allow_list = s.scope
        name_ok = any(n in names for n in (f"{t}:{a}", f"{t}:*", f"*:{a}", "*:*"))
        id_ok = any(lt in (t, "*") and li in (o.id, "*") for lt, li in allow_list)
        allowed = allowed and name_ok and id_ok
    return allowed, stage


# Translation into engine values --------------------------------------------------------------


def to_policy(world: World) -> Policy:
    registry = Registry.of(ResourceType(n, acts) for n, acts in world.types.items())
    roles = [
        Role(
            name,
            {
                Level(level): tuple(Permission(t, acts, Effect(e)) for t, acts, e in perms)
                for level, perms in spec.items()
            },
        )
        for name, spec in world.roles.items()
    ]
    return Policy.build(registry, roles)


def to_subject(spec: SubjectSpec) -> Subject:
    return Subject(
        ISSUER,
        spec.user,
        global_roles=spec.global_roles,
        organizations=spec.organizations,
        projects={
            p: ProjectMembership(ORGS[i % len(ORGS)], roles)
            for i, (p, roles) in enumerate(spec.projects.items())
        },
        groups=spec.groups,
        scope=None if spec.scope is None else TokenScope(spec.scope[0], spec.scope[1]),
    )


def to_object(spec: ObjectSpec) -> Object:
    return Object(
        spec.type,
        spec.id,
        spec.org,
        spec.project,
        spec.owner,
        acl_users=spec.acl_users,
        acl_groups=spec.acl_groups,
    )


# Strategies ----------------------------------------------------------------------------------


def small_set(pool: tuple[str, ...], min_size: int = 0, max_size: int = 3) -> Any:
    return st.frozensets(st.sampled_from(pool), min_size=min_size, max_size=max_size)


@st.composite
def worlds(draw: st.DrawFn, max_objects: int = 12) -> World:
    type_names = draw(st.lists(st.sampled_from(TYPE_POOL), min_size=1, max_size=3, unique=True))
    types = {t: draw(small_set(ACTION_POOL, 1, 4)) for t in type_names}
    all_actions = sorted(set().union(*types.values()))

    def perm() -> Any:
        def for_type(t: str) -> Any:
            pool = tuple(sorted(types[t])) if t != "*" else tuple(all_actions)
            actions = st.one_of(st.just(frozenset({"*"})), small_set(pool, 1, 3))
            return st.tuples(st.just(t), actions, st.sampled_from(("allow", "allow", "deny")))

        return st.sampled_from([*type_names, "*"]).flatmap(for_type)

    # A focused world's roles are of one level (or owner-only) and its objects sit where the
    # subject holds roles, so that level's stage is reached (nothing above decides) and, for
    # the owner stage, votes of the global, organization and project sources meet and must
    # combine, deny first. Mixed-level roles alone mostly decide at the global level.
    focus = draw(st.sampled_from((None, "organization", "project", "owner", "owner")))
    any_levels = st.dictionaries(st.sampled_from(LEVELS), st.lists(perm(), max_size=3), max_size=4)
    owner_only = st.fixed_dictionaries({"owner": st.lists(perm(), min_size=1, max_size=2)})
    if focus is None:
        role_spec = any_levels | owner_only
    else:
        role_spec = owner_only | st.fixed_dictionaries(
            {focus: st.lists(perm(), min_size=1, max_size=2)}
        )
    owner_focus = focus is not None
    roles = {name: draw(role_spec) for name in ROLE_NAMES}
    role_set = small_set(ROLE_NAMES, 0, 2)
    scope = st.none() | st.tuples(
        st.frozensets(
            st.sampled_from(
                ["*:*", *(f"{t}:*" for t in type_names), *(f"*:{a}" for a in all_actions)]
                + [f"{t}:{a}" for t in type_names for a in types[t]]
            ),
            max_size=4,
        ),
        st.frozensets(
            st.tuples(
                st.sampled_from([*type_names, "*"]), st.sampled_from(["*", "x0", "x1", "x2", "x3"])
            ),
            max_size=3,
        ),
    )
    subject = SubjectSpec(
        user=draw(st.sampled_from(USERS)),
        global_roles=draw(small_set(ROLE_NAMES, 0, 2)),
        organizations=draw(st.dictionaries(st.sampled_from(ORGS), role_set, max_size=3)),
        projects=draw(st.dictionaries(st.sampled_from(PROJECTS), role_set, max_size=3)),
        groups=draw(small_set(GROUPS, 0, 2)),
        scope=draw(scope),
    )
    acl_actions = small_set((*ACTION_POOL, "*"), 1, 2)
    keys = tuple(key_of(u) for u in USERS)
    org_pool = (
        tuple(sorted(subject.organizations)) if owner_focus and subject.organizations else ORGS
    )
    project_pool = tuple(sorted(subject.projects)) if owner_focus and subject.projects else PROJECTS
    objects = []
    for i in range(draw(st.integers(1, max_objects))):
        objects.append(
            ObjectSpec(
                type=draw(st.sampled_from(type_names)),
                id=f"x{i}",
                org=draw(st.none() | st.sampled_from(org_pool)),
                project=draw(st.none() | st.sampled_from(project_pool)),
                # the subject owns about half the objects, so its owner stage is reached
                owner=draw(st.none() | st.just(key_of(subject.user)) | st.sampled_from(keys)),
                acl_users=draw(st.dictionaries(st.sampled_from(keys), acl_actions, max_size=2)),
                acl_groups=draw(st.dictionaries(st.sampled_from(GROUPS), acl_actions, max_size=2)),
            )
        )
    return World(types, roles, subject, objects)


# Python properties ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_check_prepared_explain_when_random_world_agree_with_reference(world: World) -> None:
    compiled = compile_subject(to_policy(world), to_subject(world.subject))
    for type_name, actions in world.types.items():
        objs = [o for o in world.objects if o.type == type_name]
        for action in sorted(actions):
            prepared = prepare(compiled, action, type_name)
            expected_kept = []
            for spec in objs:
                obj = to_object(spec)
                allowed, stage = ref_decide(world, action, spec)
                decision = check(compiled, action, obj)
                assert decision.allowed == allowed, (spec, action, decision)
                assert decision.decided_by.value == stage, (spec, action, decision)
                assert prepared.matches(obj) == allowed, (spec, action, prepared.to_dict())
                assert evaluate_residual(prepared.residual, obj) == allowed
                why = explain(compiled, action, obj)
                assert why.decision == decision
                first = next((s for s in why.stages if s.verdict not in (Verdict.ABSTAIN,)), None)
                assert (first.stage.value if first else "nothing") == stage
                if allowed:
                    expected_kept.append(obj)
            objects = [to_object(o) for o in objs]
            assert prepared.filter(objects) == expected_kept
            assert filter_objects(compiled, action, objects) == expected_kept
            assert filter_objects(compiled, action, objects, prepare_from=1) == expected_kept


@settings(max_examples=150, deadline=None)  # ~10 s: the CI budget; random order does the rest
@given(worlds(), st.randoms(use_true_random=False))
def test_a_lazily_parsed_and_compiled_subject_answers_as_a_warmed_one(
    world: World, rng: Any
) -> None:
    """Lazy compilation: a subject parsed from its document (entries read on first use)
    and compiled without walking anything, asked in a random order, answers every question
    exactly as the same subject warmed up front (every membership decided first) and as the
    reference."""
    policy = to_policy(world)
    subject = to_subject(world.subject)
    questions = [
        (action, spec)
        for spec in world.objects
        for action in sorted(world.types.get(spec.type, ()))
    ]
    warmed = compile_subject(policy, subject).warm(
        {(spec.type, action) for action, spec in questions}
    )
    lazy = compile_subject(policy, parse_subject(subject.to_dict()))
    rng.shuffle(questions)
    for action, spec in questions:
        obj = to_object(spec)
        allowed, stage = ref_decide(world, action, spec)
        eager_decision = check(warmed, action, obj)
        lazy_decision = check(lazy, action, obj)
        assert lazy_decision == eager_decision, (spec, action)
        assert (lazy_decision.allowed, lazy_decision.decided_by.value) == (allowed, stage)
    assert parse_subject(subject.to_dict()) == subject  # the lazy document, whole, is the same


# SQL properties -------------------------------------------------------------------------------


def make_tables(prefix: str) -> tuple[MetaData, Table, Table]:
    md = MetaData()
    items = Table(
        f"{prefix}_items",
        md,
        Column("id", String, primary_key=True),
        Column("type", String, nullable=False),
        Column("org_id", String, index=True),
        Column("project_id", String, index=True),
        Column("owner", String, index=True),
        Column("acl_users", JSON().with_variant(JSONB(), "postgresql")),
        Column("acl_groups", JSON()),
    )
    acl = Table(
        f"{prefix}_acl",
        md,
        Column("object_id", String, nullable=False, index=True),
        Column("kind", String, nullable=False),
        Column("key", String, nullable=False),
        Column("action", String, nullable=False),
    )
    return md, items, acl


def run_sql_property(conn: Connection, *, array_params: bool) -> None:
    md, items, acl = make_tables(f"eq_{secrets.token_hex(4)}")
    md.create_all(conn)
    json_mapping = ColumnMapping(
        id=items.c.id,
        org_id=items.c.org_id,
        project_id=items.c.project_id,
        owner=items.c.owner,
        acl=JsonAcl(users=items.c.acl_users, groups=items.c.acl_groups),
    )
    table_mapping = ColumnMapping(
        id=items.c.id,
        org_id=items.c.org_id,
        project_id=items.c.project_id,
        owner=items.c.owner,
        acl=AclTable(acl, acl.c.object_id, acl.c.kind, acl.c.key, acl.c.action),
        array_params=array_params,
    )

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(worlds(max_objects=20), st.data())
    def prop(world: World, data: st.DataObject) -> None:
        conn.execute(items.delete())
        conn.execute(acl.delete())
        rows = [
            {
                "id": o.id,
                "type": o.type,
                "org_id": o.org,
                "project_id": o.project,
                "owner": o.owner,
                "acl_users": {k: sorted(v) for k, v in o.acl_users.items()},
                "acl_groups": {k: sorted(v) for k, v in o.acl_groups.items()},
            }
            for o in world.objects
        ]
        conn.execute(insert(items), rows)
        acl_rows = [
            {"object_id": o.id, "kind": kind, "key": k, "action": a}
            for o in world.objects
            for kind, entries in (("user", o.acl_users), ("group", o.acl_groups))
            for k, acts in entries.items()
            for a in acts
        ]
        if acl_rows:
            conn.execute(insert(acl), acl_rows)
        compiled = compile_subject(to_policy(world), to_subject(world.subject))
        type_name = data.draw(st.sampled_from(sorted(world.types)))
        for action in data.draw(
            st.lists(st.sampled_from(sorted(world.types[type_name])), min_size=1, max_size=2)
        ):
            expected = {
                o.id
                for o in world.objects
                if o.type == type_name and ref_decide(world, action, o)[0]
            }
            prepared = prepare(compiled, action, type_name)
            for mapping in (json_mapping, table_mapping):
                query = select(items.c.id).where(
                    items.c.type == type_name, prepared.to_sql(mapping)
                )
                got = set(conn.execute(query).scalars())
                assert got == expected, (action, type_name, prepared.to_dict(), mapping.acl)

    prop()


async def test_sql_when_random_world_on_sqlite_selects_reference_rows(sqlite_engine: Any) -> None:
    async with sqlite_engine.begin() as conn:
        await conn.run_sync(lambda c: run_sql_property(c, array_params=False))


@pytest.mark.postgres
async def test_sql_when_random_world_on_postgres_selects_reference_rows(pg_url: str) -> None:
    engine = create_engine_for_url(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: run_sql_property(c, array_params=False))
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: run_sql_property(c, array_params=True))
    finally:
        await engine.dispose()
