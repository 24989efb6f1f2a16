"""to_sql with JSON and join-table ACLs vs hand-written WHEREs over 1,000,000 PostgreSQL rows.

    .venv/bin/python benchmarks/authz/sql_acl.py --out benchmarks/authz/sql_acl.md

Loads the same 1,000,000 objects (COPY) into two variants of an application table, one with
text ids (object, organization and project) and one with bigint ids, each with the ACL both
as JSONB columns (GIN jsonb_path_ops) and as a join table acl(object_id, kind, key, action)
(b-tree (kind, key, action, object_id) and (object_id, kind, key)), then VACUUM ANALYZE.
For a subject in 3, 30 and 300 organizations (and 1,500, the regime where PostgreSQL
switches to scanning the table) it times ``SELECT count(*) ... WHERE type = ... AND <cond>``
for watchword's ``to_sql`` (rendered with ``render_sql``) and for hand-written conditions,
alternated, median of ``--runs``; every form must count the same rows. EXPLAIN ANALYZE of
every form goes to the JSON file, watchword's and the best hand-written form's to the
Markdown file. See README.md next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import secrets
import shlex
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy
from sqlalchemy import BigInteger, Column, MetaData, String, Table
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry

from watchword.authz import (
    AclTable,
    ColumnMapping,
    Engine,
    JsonAcl,
    ObjectMapping,
    Policy,
    ProjectMembership,
    Subject,
    compile_subject,
    parse_policy,
    prepare,
    render_sql,
)
from watchword.integrations.sqlalchemy import authorized

ISSUER = "https://id.example"
ME = f"{ISSUER}|me"
TYPE = "compute:clusters"
ORG_UNIVERSE = 3000
PROJECTS_PER_ORG = 5
USERS = 20_000
GROUP_UNIVERSE = 100
MY_GROUPS = ("g1", "g2")
ACL_ACTION_SETS = (("read",), ("use",), ("read", "update"), ("*",), ("delete",))


@dataclass(frozen=True)
class IdScheme:
    """How object, organization and project ids are spelt in one variant of the table."""

    name: str  # "text" or "bigint"
    sql_type: str

    def obj(self, i: int) -> str:
        return f"c{i}" if self.name == "text" else str(i + 1)

    def org(self, k: int) -> str:
        return f"o{k}" if self.name == "text" else str(k + 1)

    def project(self, k: int, j: int) -> str:
        return f"p{k}_{j}" if self.name == "text" else str(k * 10 + j + 1)


SCHEMES = (IdScheme("text", "text"), IdScheme("bigint", "bigint"))


@dataclass(frozen=True)
class Row:
    i: int
    type: str
    org: int | None
    project: int | None
    owner: str
    users: dict[str, tuple[str, ...]]
    groups: dict[str, tuple[str, ...]]


def generate(rows: int, seed: int) -> Iterator[Row]:
    """The same objects for every id scheme (same seed, same draws)."""
    rng = random.Random(seed)
    r = rng.random
    for i in range(rows):
        org = None if r() < 0.02 else rng.randrange(ORG_UNIVERSE)
        project = rng.randrange(PROJECTS_PER_ORG) if org is not None and r() < 0.8 else None
        owner = ME if r() < 0.01 else f"{ISSUER}|u{rng.randrange(USERS)}"
        users: dict[str, tuple[str, ...]] = {}
        if r() < 0.2:
            for _ in range(2 if r() < 0.3 else 1):
                who = ME if r() < 0.01 else f"{ISSUER}|u{rng.randrange(USERS)}"
                users[who] = rng.choice(ACL_ACTION_SETS)
        groups: dict[str, tuple[str, ...]] = {}
        if r() < 0.1:
            groups[f"g{rng.randrange(GROUP_UNIVERSE)}"] = rng.choice(ACL_ACTION_SETS)
        typ = TYPE if r() < 0.8 else "storage:buckets"
        yield Row(i, typ, org, project, owner, users, groups)


def create_and_load(admin_dsn: str, db: str, rows: int, seed: int) -> dict[str, float]:
    """Create database ``db`` with items_<scheme> and acl_<scheme>; returns load seconds."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{db}"')
    timings: dict[str, float] = {}
    with psycopg.connect(dsn_for(admin_dsn, db), autocommit=True) as conn:
        for s in SCHEMES:
            t = s.sql_type
            conn.execute(
                f"CREATE TABLE items_{s.name} (id {t} PRIMARY KEY, type text NOT NULL, "
                f"org_id {t}, project_id {t}, owner text, acl_users jsonb, acl_groups jsonb)"
            )
            conn.execute(
                f"CREATE TABLE acl_{s.name} (object_id {t} NOT NULL, kind text NOT NULL, "
                "key text NOT NULL, action text NOT NULL)"
            )
            t0 = time.perf_counter()
            acl_rows: list[tuple[str, str, str, str]] = []
            with (
                conn.cursor() as cur,
                cur.copy(
                    f"COPY items_{s.name} (id, type, org_id, project_id, owner, acl_users, "
                    "acl_groups) FROM STDIN"
                ) as copy,
            ):
                for row in generate(rows, seed):
                    oid = s.obj(row.i)
                    org = None if row.org is None else s.org(row.org)
                    prj = (
                        None
                        if row.org is None or row.project is None
                        else s.project(row.org, row.project)
                    )
                    au = (
                        json.dumps({k: list(v) for k, v in row.users.items()})
                        if row.users
                        else None
                    )
                    ag = (
                        json.dumps({k: list(v) for k, v in row.groups.items()})
                        if row.groups
                        else None
                    )
                    copy.write_row((oid, row.type, org, prj, row.owner, au, ag))
                    for kind, entries in (("user", row.users), ("group", row.groups)):
                        for key, actions in entries.items():
                            acl_rows.extend((oid, kind, key, a) for a in actions)
            with conn.cursor() as cur, cur.copy(f"COPY acl_{s.name} FROM STDIN") as copy:
                for acl_row in acl_rows:
                    copy.write_row(acl_row)
            timings[f"copy_{s.name}_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            for stmt in (
                f"CREATE INDEX ON items_{s.name} (org_id)",
                f"CREATE INDEX ON items_{s.name} (project_id)",
                f"CREATE INDEX ON items_{s.name} (owner)",
                f"CREATE INDEX ON items_{s.name} USING gin (acl_users jsonb_path_ops)",
                f"CREATE INDEX ON items_{s.name} USING gin (acl_groups jsonb_path_ops)",
                f"CREATE INDEX acl_{s.name}_grant ON acl_{s.name} (kind, key, action, object_id)",
                f"CREATE INDEX acl_{s.name}_object ON acl_{s.name} (object_id, kind, key)",
                f"VACUUM ANALYZE items_{s.name}",
                f"VACUUM ANALYZE acl_{s.name}",
            ):
                conn.execute(stmt)
            timings[f"index_{s.name}_s"] = time.perf_counter() - t0
    return timings


def dsn_for(admin_dsn: str, db: str) -> str:
    return " ".join(
        f"dbname={db}" if part.startswith("dbname=") else part for part in admin_dsn.split()
    )


# Policy and subject --------------------------------------------------------------------------

POLICY_DOC = {
    "resource_types": [
        {"name": "compute:clusters", "actions": ["create", "read", "update", "delete", "use"]},
        {"name": "storage:buckets", "actions": ["create", "read", "update", "delete"]},
    ],
    "roles": [
        {
            "name": "org-admin",
            "permissions": {"organization": [{"resource_type": "*", "actions": ["*"]}]},
        },
        {
            "name": "member",
            "permissions": {
                "organization": [{"resource_type": TYPE, "actions": ["read", "use"]}],
                "owner": [{"resource_type": TYPE, "actions": ["*"]}],
            },
        },
        {
            "name": "no-delete",
            "permissions": {
                "organization": [{"resource_type": TYPE, "actions": ["delete"], "effect": "deny"}]
            },
        },
        {
            "name": "project-viewer",
            "permissions": {"project": [{"resource_type": "*", "actions": ["read"]}]},
        },
        {
            "name": "project-editor",
            "permissions": {"project": [{"resource_type": TYPE, "actions": ["read", "update"]}]},
        },
    ],
}
# Organization k of the subject holds ORG_ROLE_CYCLE[k % 4].
ORG_ROLE_CYCLE = (
    frozenset({"member"}),
    frozenset({"org-admin"}),
    frozenset({"member", "no-delete"}),
    frozenset({"org-admin", "no-delete"}),
)
# Ten project roles in organizations the subject is not a member of (orgs 1000..1333).
SUBJECT_PROJECTS = tuple((1000 + 37 * j, j % PROJECTS_PER_ORG) for j in range(10))


def make_subject(n_orgs: int, s: IdScheme) -> Subject:
    projects = {
        s.project(k, j): ProjectMembership(
            s.org(k), frozenset({"project-viewer" if i % 2 else "project-editor"})
        )
        for i, (k, j) in enumerate(SUBJECT_PROJECTS)
    }
    return Subject(
        ISSUER,
        "me",
        organizations={s.org(k): ORG_ROLE_CYCLE[k % 4] for k in range(n_orgs)},
        projects=projects,
        groups=frozenset(MY_GROUPS),
    )


# Conditions ----------------------------------------------------------------------------------


@dataclass
class Form:
    """One way of writing the condition: SQL after ``WHERE type = %(bench_type)s AND``."""

    name: str
    where: str
    params: dict[str, Any]
    watchword: bool = False
    error: str | None = None


def _ids(s: IdScheme, values: list[str]) -> list[Any]:
    return [int(v) for v in values] if s.name == "bigint" else values


def hand_written(s: IdScheme, acl: str, n_orgs: int, action: str) -> list[Form]:
    """The WHEREs a developer would write by hand for this workload and ACL storage."""
    admin = [s.org(k) for k in range(n_orgs) if k % 4 in (1, 3)]
    member = [s.org(k) for k in range(n_orgs) if k % 4 in (0, 2)]
    no_delete = [s.org(k) for k in range(n_orgs) if k % 4 in (2, 3)]
    t = s.sql_type
    params: dict[str, Any] = {"h_me": ME, "h_member": _ids(s, member), "h_groups": list(MY_GROUPS)}
    owner = f"(owner = %(h_me)s AND org_id = ANY(%(h_member)s::{t}[]))"
    if action == "read":
        params["h_orgs"] = _ids(s, sorted(set(admin) | set(member)))
        params["h_prj"] = _ids(s, [s.project(k, j) for k, j in SUBJECT_PROJECTS])
        params["h_actions"] = ["read", "*"]
        head = f"org_id = ANY(%(h_orgs)s::{t}[]) OR project_id = ANY(%(h_prj)s::{t}[]) OR {owner}"

        def where(acl_sql: str) -> str:
            return f"{head} OR {acl_sql}"

    else:  # delete: denied in no-delete organizations, allowed for admins, owners, ACLs
        params["h_orgs"] = _ids(s, sorted(set(admin) - set(no_delete)))
        params["h_deny"] = _ids(s, no_delete)
        params["h_actions"] = ["delete", "*"]

        def where(acl_sql: str) -> str:
            return (
                f"(org_id IS NULL OR NOT org_id = ANY(%(h_deny)s::{t}[])) "
                f"AND (org_id = ANY(%(h_orgs)s::{t}[]) OR {owner} OR {acl_sql})"
            )

    if acl == "json":
        act = action
        docs = {
            "h_u": {ME: [act]},
            "h_u_any": {ME: ["*"]},
            **{f"h_{g}": {g: [act]} for g in MY_GROUPS},
            **{f"h_{g}_any": {g: ["*"]} for g in MY_GROUPS},
        }
        params.update({k: json.dumps(v) for k, v in docs.items()})
        contains = " OR ".join(
            f"{col} @> %({k})s::jsonb"
            for col, k in [
                ("acl_users", "h_u"),
                ("acl_users", "h_u_any"),
                *(("acl_groups", f"h_{g}") for g in MY_GROUPS),
                *(("acl_groups", f"h_{g}_any") for g in MY_GROUPS),
            ]
        )
        return [Form("hand: JSONB @> per key", where(contains), params)]
    acl_table = f"acl_{s.name}"
    users = (
        f"SELECT object_id FROM {acl_table} WHERE kind = 'user' AND key = %(h_me)s "
        "AND action = ANY(%(h_actions)s)"
    )
    groups = (
        f"SELECT object_id FROM {acl_table} WHERE kind = 'group' AND key = ANY(%(h_groups)s) "
        "AND action = ANY(%(h_actions)s)"
    )
    correlated = (
        f"EXISTS (SELECT 1 FROM {acl_table} a WHERE a.object_id = items_{s.name}.id AND "
        "a.kind = 'user' AND a.key = %(h_me)s AND a.action = ANY(%(h_actions)s)) OR "
        f"EXISTS (SELECT 1 FROM {acl_table} a WHERE a.object_id = items_{s.name}.id AND "
        "a.kind = 'group' AND a.key = ANY(%(h_groups)s) AND a.action = ANY(%(h_actions)s))"
    )
    return [
        Form("hand: id IN (SELECT …)", where(f"id IN ({users}) OR id IN ({groups})"), params),
        Form(
            "hand: id = ANY(ARRAY(SELECT …))",
            where(f"id = ANY(ARRAY({users})) OR id = ANY(ARRAY({groups}))"),
            params,
        ),
        Form("hand: correlated EXISTS (old to_sql form)", where(correlated), params),
    ]


@dataclass
class Tables:
    items: Table
    acl: Table


def sqlalchemy_tables(s: IdScheme) -> Tables:
    md = MetaData()
    id_type = String if s.name == "text" else BigInteger
    items = Table(
        f"items_{s.name}",
        md,
        Column("id", id_type, primary_key=True),
        Column("type", String),
        Column("org_id", id_type),
        Column("project_id", id_type),
        Column("owner", String),
        Column("acl_users", JSONB),
        Column("acl_groups", JSONB),
    )
    acl = Table(
        f"acl_{s.name}",
        md,
        Column("object_id", id_type),
        Column("kind", String),
        Column("key", String),
        Column("action", String),
    )
    return Tables(items, acl)


def watchword_forms(s: IdScheme, acl: str, policy: Policy, n_orgs: int, action: str) -> list[Form]:
    t = sqlalchemy_tables(s)
    acl_map: JsonAcl | AclTable = (
        JsonAcl(t.items.c.acl_users, t.items.c.acl_groups)
        if acl == "json"
        else AclTable(t.acl, t.acl.c.object_id, t.acl.c.kind, t.acl.c.key, t.acl.c.action)
    )
    prepared = prepare(compile_subject(policy, make_subject(n_orgs, s)), action, TYPE)
    forms = []
    for label, arrays in (("watchword to_sql", False), ("watchword to_sql, array_params", True)):
        mapping = ColumnMapping(
            id=t.items.c.id,
            org_id=t.items.c.org_id,
            project_id=t.items.c.project_id,
            owner=t.items.c.owner,
            acl=acl_map,
            array_params=arrays,
        )
        rendered = render_sql(prepared.to_sql(mapping), "postgresql", "pyformat")
        forms.append(Form(label, rendered.sql, dict(rendered.params), watchword=True))
    # The same question through the SQLAlchemy integration: a mapped class, the declared
    # mapping, authorized(select(...)); its WHERE must be the one to_sql gives.
    entity = type(f"Item_{s.name}", (), {})
    registry().map_imperatively(entity, t.items)
    engine = Engine(policy)
    stmt = authorized(
        sqlalchemy.select(t.items.c.id),
        engine,
        engine.compile(make_subject(n_orgs, s)),
        action,
        entity=entity,
        mapping=ObjectMapping(
            type=TYPE, organization="org_id", project="project_id", owner="owner"
        ),
        acl=acl_map,
    )
    assert stmt.whereclause is not None
    rendered = render_sql(stmt.whereclause, "postgresql", "pyformat")
    if (rendered.sql, dict(rendered.params)) != (forms[0].where, forms[0].params):
        raise SystemExit(f"authorized() and to_sql differ:\n{rendered.sql}\n{forms[0].where}")
    forms.append(Form(ORM_FORM, rendered.sql, dict(rendered.params), watchword=True))
    return forms


ORM_FORM = "watchword authorized() (SQLAlchemy)"


# Measurement ---------------------------------------------------------------------------------


@dataclass
class Result:
    form: str
    watchword: bool
    rows: int | None = None
    times_ms: list[float] = field(default_factory=list)
    error: str | None = None
    plan: list[str] = field(default_factory=list)
    jit: bool = False

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.times_ms) if self.times_ms else None


SLOW_S = 3.0  # a form slower than this in its warm-up run is timed once, plain EXPLAIN


def run_case(
    conn: psycopg.Connection[Any], s: IdScheme, forms: list[Form], runs: int
) -> list[Result]:
    table = f"items_{s.name}"
    results = [Result(f.name, f.watchword, error=f.error) for f in forms]
    queries: list[tuple[str, dict[str, Any]] | None] = []
    for f in forms:
        sql = f"SELECT count(*) FROM {table} WHERE type = %(bench_type)s AND ({f.where})"
        queries.append(None if f.error else (sql, {**f.params, "bench_type": TYPE}))
    slow: set[int] = set()
    for i, q in enumerate(queries):  # warm-up, row count, errors
        if q is None:
            continue
        t0 = time.perf_counter()
        try:
            row = conn.execute(q[0], q[1]).fetchone()
        except psycopg.Error as exc:
            results[i].error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            queries[i] = None
            continue
        elapsed = time.perf_counter() - t0
        assert row is not None
        results[i].rows = int(row[0])
        if elapsed > SLOW_S:
            slow.add(i)
            results[i].times_ms.append(elapsed * 1000)
    counts = {r.rows for r in results if r.rows is not None}
    assert len(counts) == 1, [(r.form, r.rows) for r in results]
    order = [i for i, q in enumerate(queries) if q is not None and i not in slow]
    for k in range(runs):
        rotated = order[k % len(order) :] + order[: k % len(order)] if order else []
        for i in rotated:
            q = queries[i]
            assert q is not None
            t0 = time.perf_counter()
            conn.execute(q[0], q[1]).fetchone()
            results[i].times_ms.append((time.perf_counter() - t0) * 1000)
    for i, q in enumerate(queries):
        if q is None:
            continue
        explain = "EXPLAIN " if i in slow else "EXPLAIN (ANALYZE, COSTS ON) "
        plan = [str(r[0]) for r in conn.execute(explain + q[0], q[1]).fetchall()]
        results[i].plan = plan
        results[i].jit = any(line.startswith("JIT:") for line in plan)
    return results


def best_hand(results: list[Result]) -> Result | None:
    timed = [r for r in results if not r.watchword and r.median_ms is not None]
    return min(timed, key=lambda r: r.median_ms or 0.0) if timed else None


# Database ------------------------------------------------------------------------------------


def server_facts(conn: psycopg.Connection[Any]) -> dict[str, str]:
    facts = {"version": str(conn.execute("SHOW server_version").fetchone()[0])}  # type: ignore[index]
    for name in (
        "jit",
        "jit_above_cost",
        "work_mem",
        "shared_buffers",
        "max_parallel_workers_per_gather",
        "random_page_cost",
        "effective_cache_size",
    ):
        facts[name] = str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
    return facts


# Report --------------------------------------------------------------------------------------

CaseKey = tuple[str, str, int, str]


def _elide(line: str, width: int = 200) -> str:
    """Shorten long array literals in EXPLAIN output ('{o0,o1,...}' → '{…N items}')."""

    def short(m: re.Match[str]) -> str:
        return f"'{{…{m.group(1).count(',') + 1} items}}'"

    return re.sub(r"'\{([^}]{40,})\}'", short, line)[:width]


def _ms(v: float | None) -> str:
    return "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")


def _cell(r: dict[str, Any]) -> str:
    if r["error"]:
        return "error"
    text = _ms(r["median_ms"])
    if len(r["times_ms"]) == 1:
        text += " (1 run)"
    return text + (" (JIT)" if r["jit"] else "")


def _ratio(r: dict[str, Any] | None, best: dict[str, Any] | None) -> str:
    if r is None or best is None or r["median_ms"] is None or best["median_ms"] is None:
        return "-"
    return f"{r['median_ms'] / best['median_ms']:.2f}"


def _best(case: dict[str, Any]) -> dict[str, Any] | None:
    timed = [r for r in case["results"] if not r["watchword"] and r["median_ms"] is not None]
    return min(timed, key=lambda r: r["median_ms"]) if timed else None


def _find(case: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((r for r in case["results"] if r["form"] == name), None)


def _key(case: dict[str, Any]) -> CaseKey:
    return (case["ids"], case["acl"], case["orgs"], case["action"])


def write_markdown(doc: dict[str, Any], path: Path) -> None:
    base_cases: dict[CaseKey, dict[str, Any]] = {}
    if doc.get("baseline"):
        base_cases = {_key(c): c for c in doc["baseline"]["cases"]}
    srv = doc["server"]
    load = doc["loadavg"]
    lines = [
        "# watchword to_sql with JSON and join-table ACLs vs hand-written SQL (PostgreSQL)",
        "",
        f"Command: `{doc['command']}`",
        "",
        f"Run {doc['date']}; Python {doc['python']}, SQLAlchemy {doc['sqlalchemy']}, psycopg "
        f"{doc['psycopg']}, PostgreSQL {srv['version']} on the same machine ({doc['cpus']} CPUs, "
        f"shared with other tenants). Load average (1 min) {load['start'][0]:.2f} at the start, "
        f"{load['min']:.2f}-{load['max']:.2f} while measuring, {load['end'][0]:.2f} at the end: "
        "compare ratios within this run, not absolute figures across runs.",
        "",
        f"Server settings as found (defaults): jit={srv['jit']}, jit_above_cost="
        f"{srv['jit_above_cost']}, work_mem={srv['work_mem']}, shared_buffers="
        f"{srv['shared_buffers']}, max_parallel_workers_per_gather="
        f"{srv['max_parallel_workers_per_gather']}, random_page_cost={srv['random_page_cost']}. "
        "Statements are sent with psycopg's `prepare_threshold=None` (no server-side prepared "
        "statements), so every execution is planned with its parameter values.",
        "",
        f"Data: {doc['rows']:,} objects (80 % `{TYPE}`), {ORG_UNIVERSE:,} organizations "
        f"(2 % of objects without one), {PROJECTS_PER_ORG} projects each (80 % of objects in "
        "one), 1 % owned by the subject; 20 % with 1-2 user grants (1 % of those to the "
        f"subject), 10 % with a grant to one of {GROUP_UNIVERSE} groups (the subject is in 2); "
        f"{doc['acl_rows']['text']:,} rows in each acl table. Each variant (text ids `c17`, "
        "`o3`, `p3_1`; bigint ids) holds the same objects. Load: "
        + (
            ", ".join(f"{k} {v:.1f} s" for k, v in doc["load_s"].items())
            or "an existing database (--db), loaded earlier by this script"
        )
        + ".",
        "",
        "Subject: organizations 0..N-1 with roles cycling member / org-admin / "
        "member+no-delete / org-admin+no-delete, ten project roles elsewhere, groups g1 and g2. "
        "`read` is allowed by organization, project, ownership or ACL; `delete` is denied in "
        "no-delete organizations (a negated leaf) and allowed by org-admin, ownership or ACL.",
        "",
        f"Each form: one warm-up run (its row count must equal every other form's), then "
        f"{doc['runs']} runs in rotating order, median; a form slower than {SLOW_S:.0f} s in "
        "its warm-up is reported from that one run and planned with plain EXPLAIN. "
        "“(JIT)” marks plans in which PostgreSQL's JIT compiled the query.",
        "",
        "## Summary: watchword ÷ best hand-written form",
        "",
    ]
    if doc.get("baseline"):
        b = doc["baseline"]
        lines += [
            f"“before” columns: ratios within an earlier run of this script, `{b['command']}`, "
            f"{b['date']} ({b['runs']} runs, load average {b['loadavg']['min']:.2f}-"
            f"{b['loadavg']['max']:.2f}), each to that run's best hand-written form; "
            f"{b['note']}",
            "",
        ]
    header = (
        "| ids | ACL | orgs | action | rows | watchword ms | ÷ best | with array_params ms "
        "| ÷ best | through authorized() ms | ÷ best | best hand-written form | ms |"
    )
    sep = "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    if base_cases:
        header += " before: watchword ÷ best | before: with array_params ÷ best |"
        sep += "---|---|"
    lines += [header, sep]
    for case in doc["cases"]:
        best = _best(case)
        ww = _find(case, "watchword to_sql")
        wa = _find(case, "watchword to_sql, array_params")
        wo = _find(case, ORM_FORM)
        rows = next((r["rows"] for r in case["results"] if r["rows"] is not None), None)
        row = (
            f"| {case['ids']} | {case['acl']} | {case['orgs']} | {case['action']} | "
            f"{rows:,} | {_cell(ww) if ww else '-'} | {_ratio(ww, best)} | "
            f"{_cell(wa) if wa else '-'} | {_ratio(wa, best)} | "
            f"{_cell(wo) if wo else '-'} | {_ratio(wo, best)} | "
            f"{best['form'].removeprefix('hand: ') if best else '-'} | "
            f"{_cell(best) if best else '-'} |"
        )
        if base_cases:
            old = base_cases.get(_key(case))
            cells = []
            old_best = _best(old) if old else None
            for name in ("watchword to_sql", "watchword to_sql, array_params"):
                r = _find(old, name) if old else None
                cells.append("error" if r and r["error"] else _ratio(r, old_best))
            row += f" {cells[0]} | {cells[1]} |"
        lines.append(row)
    lines += ["", "## Every form (median ms)", ""]
    for acl in ("json", "table"):
        cases = [c for c in doc["cases"] if c["acl"] == acl]
        if not cases:
            continue
        names = [r["form"] for r in cases[0]["results"]]
        lines += [
            f"ACL as {'JSONB columns' if acl == 'json' else 'a join table'}:",
            "",
            "| ids | orgs | action | " + " | ".join(names) + " |",
            "|---|---|---|" + "---|" * len(names),
        ]
        for case in cases:
            cells = [_cell(r) for r in case["results"]]
            lines.append(
                f"| {case['ids']} | {case['orgs']} | {case['action']} | " + " | ".join(cells) + " |"
            )
        lines.append("")
    errors = sorted(
        {(r["form"], r["error"]) for c in doc["cases"] for r in c["results"] if r["error"]}
    )
    if errors:
        lines += ["Errors:", ""] + [f"- {f}: `{e}`" for f, e in errors] + [""]
    lines += [
        "## Plans",
        "",
        "EXPLAIN (ANALYZE) of watchword's default mapping and of the best hand-written form "
        "for each case (array literals shortened); every form's plan is in the JSON file.",
        "",
    ]
    for case in doc["cases"]:
        best = _best(case)
        ww = _find(case, "watchword to_sql")
        for r in (ww, best):
            if r is None or not r["plan"]:
                continue
            lines += [
                f"<details><summary>{case['ids']} ids, {case['acl']} ACL, {case['orgs']} orgs, "
                f"{case['action']}: {r['form']} ({_cell(r)} ms)</summary>",
                "",
                "```",
                *(_elide(p) for p in r["plan"]),
                "```",
                "",
                "</details>",
                "",
            ]
    path.write_text("\n".join(lines) + "\n")


# Main ----------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/authz/sql_acl.md"))
    ap.add_argument("--json", type=Path, help="default: --out with .json")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--orgs", default="3,30,300,1500")
    ap.add_argument("--actions", default="read,delete")
    ap.add_argument("--acls", default="json,table")
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--pg-admin-dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=test")
    ap.add_argument("--db", help="reuse this already loaded database (not dropped)")
    ap.add_argument("--keep", action="store_true", help="do not drop the database created")
    ap.add_argument("--baseline", type=Path, help="JSON of an earlier run, shown as 'before'")
    ap.add_argument("--baseline-note", default="", help="how the baseline was produced")
    args = ap.parse_args()
    json_path: Path = args.json or args.out.with_suffix(".json")

    load_start = os.getloadavg()
    db = args.db or f"ww_bench_acl_{secrets.token_hex(4)}"
    load_s: dict[str, float] = {}
    if not args.db:
        load_s = create_and_load(args.pg_admin_dsn, db, args.rows, args.seed)
        print(f"loaded {db}: {load_s}", file=sys.stderr)
    policy = parse_policy(POLICY_DOC)
    cases: list[dict[str, Any]] = []
    loads: list[float] = []
    try:
        with psycopg.connect(
            dsn_for(args.pg_admin_dsn, db), autocommit=True, prepare_threshold=None
        ) as conn:
            conn.execute("SET statement_timeout = '120s'")
            server = server_facts(conn)
            acl_rows = {
                s.name: int(conn.execute(f"SELECT count(*) FROM acl_{s.name}").fetchone()[0])  # type: ignore[index]
                for s in SCHEMES
            }
            for s in SCHEMES:
                for acl in args.acls.split(","):
                    for n in (int(x) for x in args.orgs.split(",")):
                        for action in args.actions.split(","):
                            forms = watchword_forms(s, acl, policy, n, action)
                            forms += hand_written(s, acl, n, action)
                            loads.append(os.getloadavg()[0])
                            results = run_case(conn, s, forms, args.runs)
                            case = {
                                "ids": s.name,
                                "acl": acl,
                                "orgs": n,
                                "action": action,
                                "results": [
                                    {
                                        "form": r.form,
                                        "watchword": r.watchword,
                                        "rows": r.rows,
                                        "median_ms": r.median_ms,
                                        "times_ms": r.times_ms,
                                        "error": r.error,
                                        "jit": r.jit,
                                        "plan": [_elide(line, 400) for line in r.plan],
                                    }
                                    for r in results
                                ],
                            }
                            cases.append(case)
                            summary = ", ".join(f"{r.form}={_ms(r.median_ms)}" for r in results)
                            print(f"{s.name} {acl} {n} {action}: {summary}", file=sys.stderr)
    finally:
        if not args.db and not args.keep:
            with psycopg.connect(args.pg_admin_dsn, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    doc: dict[str, Any] = {
        "command": f".venv/bin/python {shlex.join(sys.argv)}",
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg.__version__,
        "cpus": os.cpu_count(),
        "loadavg": {
            "start": load_start,
            "end": os.getloadavg(),
            "min": min(loads, default=0.0),
            "max": max(loads, default=0.0),
        },
        "server": server,
        "rows": args.rows,
        "acl_rows": acl_rows,
        "load_s": load_s,
        "runs": args.runs,
        "seed": args.seed,
        "cases": cases,
    }
    if args.baseline:
        baseline = json.loads(args.baseline.read_text())
        baseline.pop("baseline", None)
        for case in baseline["cases"]:  # timings only: its plans are in its own file
            for r in case["results"]:
                r["plan"] = []
        baseline["note"] = args.baseline_note
        doc["baseline"] = baseline
    json_path.write_text(json.dumps(doc, indent=1) + "\n")
    write_markdown(doc, args.out)
    print(f"wrote {args.out} and {json_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
