"""The application's own objects: checked through a declared mapping, or copied into Objects.

    .venv/bin/python benchmarks/authz/mapping.py --out benchmarks/authz/mapping.md

Workload: a subject in 10 organizations (role ``member``: read at organization level, ``*``
on what it owns); 2,000 application rows (a slots dataclass: integer id, organization,
owner as the app's user id, a two-entry user ACL keyed by app user ids) spread over 20
organizations, a quarter owned by the subject. Per object, same run, alternated, median of
the rounds:

- ``Object``: ``Engine.check`` on ready-made Objects (what a check costs when the app already
  has them: the floor);
- ``copy + check``: the app builds an Object per row (subject keys ``"issuer|id"``, ``str``
  ids), then checks it: what the engine asked of apps before the mapping;
- ``mapped``: ``Engine.check`` on the row itself, read through ``ObjectMapping``.

``read`` is decided by the organization (or nothing); ``delete`` reaches the owner stage.
Then ``Engine.filter`` on mapped rows, one by one (``prepare_from`` above the list length)
against prepared (``prepare_from=1``), fresh compiled subject each time (as crossover.py),
to check that the documented default (1,000) still holds for mapped rows.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchword.authz import (
    Engine,
    Object,
    ObjectMapping,
    ObjectMappings,
    parse_policy,
    parse_subject,
)

ISSUER = "https://id.example"
TYPE = "compute:clusters"
POLICY = parse_policy(
    {
        "resource_types": [{"name": TYPE, "actions": ["read", "update", "delete"]}],
        "roles": [
            {
                "name": "member",
                "permissions": {
                    "organization": [{"resource_type": TYPE, "actions": ["read"]}],
                    "owner": [{"resource_type": "*", "actions": ["*"]}],
                },
            }
        ],
    }
)


@dataclass(slots=True)
class Cluster:
    id: int
    org_id: str
    owner_id: str
    shares: dict[str, list[str]]


MAPPING = ObjectMapping(
    type=TYPE, organization="org_id", owner="owner_id", acl_users="shares", issuer=ISSUER
)


def rows(n: int) -> list[Cluster]:
    return [
        Cluster(
            i,
            f"org{i % 20}",
            "me" if i % 4 == 0 else f"u{i % 7}",
            {f"u{i % 5}": ["read"], f"u{i % 3}": ["update"]},
        )
        for i in range(n)
    ]


def copy(row: Cluster) -> Object:
    """What an app wrote before the mapping: an Object per row."""
    return Object(
        TYPE,
        str(row.id),
        row.org_id,
        owner=f"{ISSUER}|{row.owner_id}",
        acl_users={f"{ISSUER}|{k}": v for k, v in row.shares.items()},
    )


SUBJECT = {
    "issuer": ISSUER,
    "id": "me",
    "organizations": {f"org{i}": ["member"] for i in range(10)},
}


def per_object(rounds: int) -> list[str]:
    engine = Engine(POLICY, objects=ObjectMappings({Cluster: MAPPING}))
    data = rows(2000)
    objects = [copy(r) for r in data]
    check = engine.check
    lines = [
        "| action | Object µs | copy + check µs | mapped µs | mapped ÷ Object "
        "| mapped ÷ copy + check |",
        "|---|---|---|---|---|---|",
    ]
    for action in ("read", "delete"):
        compiled = engine.compile(parse_subject(SUBJECT))

        def plain(c: Any = compiled, a: str = action) -> None:
            for o in objects:
                check(c, a, o)

        def copied(c: Any = compiled, a: str = action) -> None:
            for r in data:
                check(c, a, copy(r))

        def mapped(c: Any = compiled, a: str = action) -> None:
            for r in data:
                check(c, a, r)

        runs: dict[str, list[float]] = {"plain": [], "copied": [], "mapped": []}
        fns: dict[str, Callable[[], None]] = {"plain": plain, "copied": copied, "mapped": mapped}
        for fn in fns.values():
            fn()  # warm the compiled subject's tables and the policy's memo
        for _ in range(rounds):
            for name, fn in fns.items():
                t0 = time.perf_counter_ns()
                fn()
                runs[name].append((time.perf_counter_ns() - t0) / 1000 / len(data))
        p, c, m = (statistics.median(runs[k]) for k in ("plain", "copied", "mapped"))
        lines.append(f"| {action} | {p:.2f} | {c:.2f} | {m:.2f} | {m / p:.2f} | {m / c:.2f} |")
    return lines


def crossover(rounds: int) -> list[str]:
    engine = Engine(POLICY, objects=ObjectMappings({Cluster: MAPPING}))
    data = rows(5000)
    lines = [
        "| objects | one by one µs | prepared µs | ratio (prepared ÷ one by one) |",
        "|---|---|---|---|",
    ]
    for n in (10, 100, 500, 1000, 2000, 5000):
        part = data[:n]
        loop, prep = [], []
        for _ in range(rounds):
            compiled = engine.compile(parse_subject(SUBJECT))
            t0 = time.perf_counter_ns()
            engine.filter(compiled, "read", part, prepare_from=10**9)
            loop.append(time.perf_counter_ns() - t0)
            compiled = engine.compile(parse_subject(SUBJECT))
            t0 = time.perf_counter_ns()
            engine.filter(compiled, "read", part, prepare_from=1)
            prep.append(time.perf_counter_ns() - t0)
        a, b = statistics.median(loop) / 1000, statistics.median(prep) / 1000
        lines.append(f"| {n:,} | {a:.0f} | {b:.0f} | {b / a:.2f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# The application's own objects: mapped vs copied into Objects",
        "",
        "Command: `.venv/bin/python benchmarks/authz/mapping.py --out "
        f"benchmarks/authz/mapping.md` ({stamp}, Python {platform.python_version()}, "
        f"median of {args.rounds} rounds, alternated in each round).",
        "",
        "## Per object (2,000 rows, subject in 10 of their 20 organizations)",
        "",
        *per_object(args.rounds),
        "",
        "## Engine.filter on mapped rows: one by one vs prepared",
        "",
        *crossover(args.rounds),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
