"""ACL document for a subject in 100 organizations x 10 groups x 10 projects: cold and cached.

    .venv/bin/python benchmarks/rbac/run.py --out benchmarks/rbac/results.md

See README.md (workload, method, what each row measures). Everything runs in one process,
in one run; compare the ratios, the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert

from watchword.authz.compile import compile_subject
from watchword.authz.evaluate import check
from watchword.authz.model import Object
from watchword.clock import SystemClock
from watchword.config import load_settings
from watchword.rbac.acl import acl_document
from watchword.rbac.claims import Identity
from watchword.rbac.model import GroupMember
from watchword.rbac.service import RbacService
from watchword.rbac.store import groups as group_store
from watchword.rbac.store import roles as role_store
from watchword.rbac.store.facts import load_facts
from watchword.rbac.store.record import writing
from watchword.rbac.subject import resolve_subject
from watchword.rbac.tables import (
    group_members,
    group_projects,
    group_roles,
    groups,
    organizations,
    projects,
)
from watchword.runtime import Runtime
from watchword.services import Services
from watchword.storage.db import create_engine_for_url
from watchword.storage.migrate import upgrade_engine

SUBJECT = "bench-user@example.com"
EXTRA_TYPES = {
    "compute:clusters": ["create", "read", "update", "delete", "use"],
    "storage:volumes": ["create", "read", "update", "delete"],
    "network:ips": ["create", "read", "update", "delete", "use"],
}
EXTRA_ROLES = {
    "cluster-operator": {"project": [{"resource_type": "compute:clusters", "actions": ["*"]}]},
    "volume-reader": {
        "organization": [{"resource_type": "network:ips", "actions": ["read"]}],
        "project": [{"resource_type": "storage:volumes", "actions": ["read"]}],
    },
    "no-ip-delete": {
        "organization": [{"resource_type": "network:ips", "actions": ["delete"], "effect": "deny"}]
    },
}


def group_roles_for(j: int) -> list[str]:
    # 10 groups per org with a few distinct role sets, as real organizations have.
    if j == 0:
        return ["org-admin", "no-ip-delete"]
    if j == 1:
        return ["org-reader"]
    return ["project-member", "cluster-operator" if j % 2 else "volume-reader"]


async def build(services: Services, n_orgs: int, n_groups: int, n_projects: int) -> None:
    ctx = services.store
    runtime = services.runtime
    for name, actions in EXTRA_TYPES.items():
        await role_store.create_resource_type(ctx, name=name, actions=actions)
    for rid, perms in EXTRA_ROLES.items():
        await role_store.create_role(ctx, role_id=rid, name=rid, permissions=perms)
    now = datetime.now(UTC)
    stamp = {"version": 1, "created_at": now, "updated_at": now, "description": ""}
    issuer = runtime.settings.issuer_url
    async with writing(runtime.engine) as conn:
        for o in range(n_orgs):
            org = f"org_{o:04d}"
            await conn.execute(insert(organizations).values(id=org, name=org, **stamp))
            await conn.execute(
                insert(projects),
                [
                    {"id": f"prj_{o:04d}_{p:02d}", "organization_id": org, "name": f"p{p}", **stamp}
                    for p in range(n_projects)
                ],
            )
            gids = [f"grp_{o:04d}_{g:02d}" for g in range(n_groups)]
            await conn.execute(
                insert(groups),
                [
                    {
                        "id": gid,
                        "organization_id": org,
                        "name": gid,
                        "legacy_user_ids": None,
                        **stamp,
                    }
                    for gid in gids
                ],
            )
            await conn.execute(
                insert(group_members),
                [
                    {"group_id": g, "issuer": issuer, "subject_id": SUBJECT, "email": None}
                    for g in gids
                ],
            )
            await conn.execute(
                insert(group_roles),
                [
                    {"group_id": gid, "role_id": r}
                    for j, gid in enumerate(gids)
                    for r in group_roles_for(j)
                ],
            )
            await conn.execute(
                insert(group_projects),
                [
                    {"group_id": gid, "project_id": f"prj_{o:04d}_{(j + k) % n_projects:02d}"}
                    for j, gid in enumerate(gids)
                    for k in (0, 1)
                    if j >= 2
                ],
            )


def timed(fn: Callable[[], object], n: int, repeat: int) -> list[float]:
    """Per-call seconds, one figure per repetition (n calls each)."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - start) / n)
    return out


async def atimed(fn: Callable[[], Awaitable[object]], n: int, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        out.append((time.perf_counter() - start) / n)
    return out


async def end_to_end(url: str, args: argparse.Namespace) -> list[tuple[str, list[float]]]:
    """Cold (cache cleared) and cached ``service.acl`` on the database at ``url``."""
    engine = create_engine_for_url(url)
    await upgrade_engine(engine)
    runtime = Runtime(settings=load_settings(environ={}), engine=engine, clock=SystemClock())
    services = Services.build(runtime)
    await build(services, args.orgs, args.groups, args.projects)
    service = services.rbac
    issuer = runtime.settings.issuer_url

    async def cold() -> object:
        service._cache.clear()
        return await service.acl(issuer, SUBJECT)

    async def cached() -> object:
        return await service.acl(issuer, SUBJECT)

    await cached()
    rows = [
        ("cold, end to end (PostgreSQL facts + compute)", await atimed(cold, 10, args.repeat)),
        ("cached, end to end (PostgreSQL generation read)", await atimed(cached, 200, args.repeat)),
    ]
    await services.aclose()
    await runtime.close()
    return rows


def fmt(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:,.3f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orgs", type=int, default=100)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--projects", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--pg-dsn",
        default="host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        help="Where to create a scratch database for the PostgreSQL rows ('' to skip).",
    )
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    engine = create_engine_for_url(f"sqlite+aiosqlite:///{tmp.name}/bench.sqlite3")
    await upgrade_engine(engine)
    runtime = Runtime(settings=load_settings(environ={}), engine=engine, clock=SystemClock())
    services = Services.build(runtime)
    t0 = time.perf_counter()
    await build(services, args.orgs, args.groups, args.projects)
    setup_s = time.perf_counter() - t0
    service: RbacService = services.rbac
    issuer = runtime.settings.issuer_url

    # Inputs of the pure computation, loaded once.
    await service.generation()
    identity = Identity(issuer, SUBJECT)
    async with engine.connect() as conn:
        facts = await load_facts(conn, identity, local_issuer=issuer)
    policy = service.policy

    def cold_pure() -> dict[str, object]:
        resolution = resolve_subject(identity, facts)
        compiled = compile_subject(policy, resolution.subject)
        return acl_document(compiled, resolution).to_dict()

    doc = cold_pure()
    orgs_in_doc = doc["organizations"]
    assert isinstance(orgs_in_doc, list)
    n_project_entries = sum(len(o["projects"]) for o in orgs_in_doc)

    # Baseline, same run: the naive way, one check() per (org, project, type, action) cell.
    resolution = resolve_subject(identity, facts)
    cells = [
        (t, a, o, p)
        for o in sorted(resolution.member_orgs)
        for p in (None, *resolution.projects_by_org.get(o, ()))
        for t, rt in sorted(policy.registry.types.items())
        for a in sorted(rt.actions)
    ]

    def naive() -> int:
        c = compile_subject(policy, resolve_subject(identity, facts).subject)
        return sum(
            check(c, a, Object(t, "x", org_id=o, project_id=p)).allowed for t, a, o, p in cells
        )

    # The document and the naive checks agree cell by cell (fall-through reading).
    allowed_naive = naive()
    listed: set[tuple[str | None, str | None, str, str]] = set()  # (org, project, type, action)

    def add(org: str | None, project: str | None, endpoints: Any) -> None:
        for e in endpoints:
            listed.update((org, project, e["name"], op) for op in e["operations"])

    add(None, None, doc["global"])
    for entry in orgs_in_doc:
        add(entry["id"], None, entry["endpoints"])
        for pe in entry["projects"]:
            add(entry["id"], pe["id"], pe["endpoints"])
    allowed_doc = sum(
        (None, None, t, a) in listed or (o, None, t, a) in listed or (o, p, t, a) in listed
        for t, a, o, p in cells
    )
    assert allowed_doc == allowed_naive, (allowed_doc, allowed_naive)

    async def cold_e2e() -> object:
        service._cache.clear()  # a miss: facts from SQLite, resolve, compile, document
        return await service.acl(issuer, SUBJECT)

    async def cached_e2e() -> object:
        return await service.acl(issuer, SUBJECT)  # one generation read + dict lookup

    await cached_e2e()
    resolved = await service.resolve(issuer, SUBJECT)

    rows: list[tuple[str, list[float]]] = []
    rows.append(("baseline: naive check() per cell", timed(naive, 1, args.repeat)))
    rows.append(
        ("cold, pure (resolve + compile + document), GC as is", timed(cold_pure, 20, args.repeat))
    )
    rows.append(
        ("cold, end to end (SQLite facts + the above)", await atimed(cold_e2e, 10, args.repeat))
    )
    rows.append(
        (
            "cached, end to end (generation read + lookup)",
            await atimed(cached_e2e, 200, args.repeat),
        )
    )
    rows.append(
        (
            "cached, lookup only (no database read)",
            timed(lambda: resolved.document(None), 20000, args.repeat),
        )
    )

    if args.pg_dsn:
        name = f"ww_bench_rbac_{secrets.token_hex(4)}"
        with psycopg.connect(args.pg_dsn, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        parts = dict(item.split("=", 1) for item in args.pg_dsn.split())
        try:
            rows += await end_to_end(
                f"postgresql+psycopg://{parts['user']}@{parts['host']}:{parts['port']}/{name}",
                args,
            )
        finally:
            with psycopg.connect(args.pg_dsn, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    gc.collect()
    gc.freeze()  # what a server does after start-up: long-lived objects leave the GC's scans
    rows.append(("cold, pure, after gc.freeze() at start-up", timed(cold_pure, 20, args.repeat)))
    gc.disable()
    rows.append(("cold, pure, GC paused (floor)", timed(cold_pure, 20, args.repeat)))
    gc.enable()

    # Invalidation: a write to any input bumps the generation; the next call recomputes.
    before = await service.acl(issuer, SUBJECT)
    ctx = services.store
    g = await group_store.get_group(ctx, "grp_0000_02")
    await group_store.update_group(ctx, g.id, if_match=g.stamp.version, project_ids=[])
    after = await service.acl(issuer, SUBJECT)
    invalidated = after is not before and after != before
    await group_store.add_member(ctx, "grp_0001_02", GroupMember(issuer, "someone-else"))
    after_unrelated = await service.acl(issuer, SUBJECT)
    recomputed_on_unrelated_write = after_unrelated is not after

    base = statistics.median(rows[0][1])
    lines = [
        "# RBAC benchmark results",
        "",
        "Command: `.venv/bin/python benchmarks/rbac/run.py --out benchmarks/rbac/results.md`",
        "",
        f"- machine: {platform.machine()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; run at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- workload: subject in {args.orgs} organizations x {args.groups} groups x "
        f"{args.projects} projects ({args.orgs * args.groups} groups, "
        f"{n_project_entries} project entries in the document); "
        f"{len(policy.registry.types)} resource types, {len(policy.roles)} roles, "
        f"{len(cells):,} (org/project, type, action) cells; setup {setup_s:.1f} s",
        f"- document and naive checks agree on all {len(cells):,} cells "
        f"({allowed_naive:,} allowed)",
        f"- invalidation: a change to the subject's group -> new document: {invalidated}; "
        f"a write to an unrelated group -> recomputed: {recomputed_on_unrelated_write} "
        "(the generation is global: any RBAC write invalidates every entry)",
        f"- {args.repeat} repetitions of n calls each; a repetition gives the mean per call; "
        "the table shows the median, min and max over repetitions",
        "",
        "Rows are in the order they ran. `cold, pure` is the computation the target is about: "
        "subject resolution, compilation and the document from facts already loaded; `end to "
        "end` adds loading the facts for 1,000 groups (SQLite through aiosqlite, or "
        "PostgreSQL through psycopg). A cache hit costs one generation read (the "
        "invalidation check) plus a dictionary lookup.",
        "",
        "| what | median per call | min | max | vs baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, samples in rows:
        med = statistics.median(samples)
        lines.append(
            f"| {name} | {fmt(med)} | {fmt(min(samples))} | {fmt(max(samples))} | "
            f"{base / med:,.1f}x faster |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    await services.aclose()
    await runtime.close()
    tmp.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
