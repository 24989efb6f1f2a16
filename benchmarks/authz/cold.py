"""The cold path: a check for a subject that is not compiled yet, at 1 to 1,000 organizations.

An app that receives the subject with each request (claims, or the subject document of
``/v1/authz/check``) pays, per request: ``parse_subject(document)`` + ``compile_subject`` +
``check``. This measures that, beside cedarpy's and pycasbin's check with everything
preloaded (their fastest documented way, as in ``run.py``), in the same run, on ``run.py``'s
workload (same seed, same questions), and the same figures for a baseline revision of
watchword (``--baseline REV``, default ``HEAD``: what is committed), each implementation in
its own process, rounds alternated between them:

    .venv/bin/python benchmarks/authz/cold.py --out benchmarks/authz/cold.md [--baseline REV]

Per organization count and implementation (µs per call, ``perf_counter_ns`` around each call,
the timer's own median cost subtracted; p50 and p99 of each round, median over rounds):

- ``cold check``: ``check(compile_subject(policy, parse_subject(doc)), action, obj)``, a new
  parse and compile for every question (``doc`` is the subject's document as JSON decodes it);
- ``cold Engine``: the same through ``Engine.compile`` + ``Engine.check`` (metrics on);
- ``cold, memos empty``: ``cold check`` with the policy's memos (``Policy.decisions``, role
  set → decision, and ``Policy.verdicts``, role block → verdict) emptied before each call:
  the first request after a policy change, or a role set no subject used yet (``cold check``
  runs with them filled by earlier questions, as in any process serving for a while);
- ``parse_subject``, ``compile_subject``: each alone;
- ``warm check``: ``check`` on a subject compiled once and asked every question once
  before timing (the steady state of a long-lived compiled subject);
- ``cedarpy``: ``is_authorized`` with a pre-parsed ``PolicySet`` and ``Entities`` (the
  subject's memberships and every object loaded once); ``pycasbin``: ``enforce`` on an
  ``Enforcer`` with the policy loaded once.

Before timing, every cold answer is compared with ``run.py``'s hand-written floor; a
disagreement stops the run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
COLUMNS = (
    "cold check", "cold Engine", "cold, memos empty", "parse_subject", "compile_subject",
    "warm check", "cedarpy", "pycasbin",
)  # fmt: skip
ROOT = HERE.parents[1]


def measure(orgs: list[int], questions: int, seed: int) -> dict[str, Any]:
    """One round, in this process, with whichever ``watchword`` is importable."""
    sys.path.insert(0, str(HERE))
    import importlib

    import cedarpy

    run = importlib.import_module("run")  # run.py beside this file: workload, floor, peers
    from prometheus_client import CollectorRegistry

    from watchword.authz import AuthzMetrics, Engine, check, compile_subject, parse_subject

    overhead = run.timer_overhead_ns()
    pc = time.perf_counter_ns
    out: dict[str, Any] = {}
    for n in orgs:
        w = run.build_workload(n, questions, seed)
        doc = json.loads(json.dumps(w.subject.to_dict()))
        policy = w.policy
        engine = Engine(policy, metrics=AuthzMetrics(CollectorRegistry()))
        floor = run.make_floor(w)
        qs = w.questions
        for action, obj in qs:
            got = check(compile_subject(policy, parse_subject(doc)), action, obj).allowed
            if got != floor(action, obj):
                raise SystemExit(f"cold check disagrees with the floor: {n} orgs, {action} {obj}")
        warm = compile_subject(policy, parse_subject(doc))
        for action, obj in qs:  # one pass first: the steady state of a long-lived subject
            check(warm, action, obj)
        entities = cedarpy.Entities.from_json_str(run.cedar_entities(w))
        policies = cedarpy.PolicySet.from_str(run.CEDAR_POLICIES)
        enforcer = run.make_casbin(w)
        cedar_reqs = [run.cedar_request(a, o) for a, o in qs[:1000]]
        casbin_reqs = [run.casbin_args(a, o) for a, o in qs[:300]]

        def timed(fn: Any, calls: list[Any]) -> tuple[float, float]:
            gc.collect()
            samples = []
            for args in calls:
                t0 = pc()
                fn(*args)
                samples.append(pc() - t0 - overhead)
            return statistics.median(samples) / 1000, run.pct(samples, 0.99) / 1000

        def cold(action: str, obj: Any, policy: Any = policy, doc: Any = doc) -> bool:
            return check(compile_subject(policy, parse_subject(doc)), action, obj).allowed

        def cold_engine(action: str, obj: Any, engine: Any = engine, doc: Any = doc) -> bool:
            return bool(engine.check(engine.compile(parse_subject(doc)), action, obj).allowed)

        def cold_forgetting(action: str, obj: Any, policy: Any = policy, doc: Any = doc) -> bool:
            # The policy's memos emptied first: as the first request after a policy change.
            getattr(policy, "decisions", {}).clear()
            policy.verdicts.clear()
            return check(compile_subject(policy, parse_subject(doc)), action, obj).allowed

        parsed = parse_subject(doc)
        out[str(n)] = {
            "cold check": timed(cold, qs),
            "cold Engine": timed(cold_engine, qs),
            "cold, memos empty": timed(cold_forgetting, qs),
            "parse_subject": timed(parse_subject, [(doc,)] * len(qs)),
            "compile_subject": timed(compile_subject, [(policy, parsed)] * len(qs)),
            "warm check": timed(check, [(warm, a, o) for a, o in qs]),
            "cedarpy": timed(cedarpy.is_authorized, [(r, policies, entities) for r in cedar_reqs]),
            "pycasbin": timed(enforcer.enforce, casbin_reqs),
        }
    return out


def worktree(rev: str, folder: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), rev],
        check=True,
        capture_output=True,
    )
    return folder


def one_round(
    src: Path, orgs: str, questions: int, seed: int, script_tree: Path | None = None
) -> dict[str, Any]:
    """One measurement in a fresh process, by the revision's own copy of this script where
    it has one (its workload code, ``run.py``, speaks that revision's API), else by the copy
    in ``script_tree`` (``--script-from``), else by this one."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    script = Path(__file__)
    for tree in (src.parent, script_tree):
        own = None if tree is None else tree / "benchmarks" / "authz" / "cold.py"
        if own is not None and own.exists():
            script = own
            break
    done = subprocess.run(
        [sys.executable, str(script), "--measure", "--orgs", orgs,
         "--questions", str(questions), "--seed", str(seed)],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return dict(json.loads(done.stdout))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "cold.md")
    ap.add_argument("--orgs", default="1,10,100,1000")
    ap.add_argument("--questions", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--baseline", default="HEAD", help="git revision to compare with ('' none)")
    ap.add_argument(
        "--script-from",
        default="",
        help="for a baseline older than this script: the revision whose cold.py and run.py "
        "measure it (one that speaks the baseline's API)",
    )
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    orgs = [int(x) for x in args.orgs.split(",")]
    if args.measure:
        print(json.dumps(measure(orgs, args.questions, args.seed)))
        return
    started = time.time()
    load_before = os.getloadavg()
    tree = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    impls: dict[str, Path] = {f"current ({tree})": ROOT / "src"}
    tmp = Path(tempfile.mkdtemp(prefix="ww-cold-"))
    try:
        if args.baseline:
            rev = subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            impls[f"baseline ({rev})"] = worktree(rev, tmp / "baseline") / "src"
        script_tree = worktree(args.script_from, tmp / "script") if args.script_from else None
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in impls}
        for r in range(args.rounds):
            names = list(impls)
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                rounds[name].append(
                    one_round(impls[name], args.orgs, args.questions, args.seed, script_tree)
                )
                print(f"round {r + 1}/{args.rounds}: {name} done", file=sys.stderr)
    finally:
        for made in ("baseline", "script"):
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / made)],
                check=False, capture_output=True,
            )  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)
    result = summarize(rounds, orgs)
    write(args, result, impls, started, load_before)


def summarize(rounds: dict[str, list[dict[str, Any]]], orgs: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, per_round in rounds.items():
        out[name] = {}
        for n in orgs:
            cells = {}
            for what in per_round[0][str(n)]:
                p50 = [rd[str(n)][what][0] for rd in per_round]
                p99 = [rd[str(n)][what][1] for rd in per_round]
                cells[what] = {
                    "p50_us": statistics.median(p50),
                    "p99_us": statistics.median(p99),
                    "p50_rounds": p50,
                }
            out[name][str(n)] = cells
    return out


def write(
    args: argparse.Namespace,
    result: dict[str, Any],
    impls: dict[str, Path],
    started: float,
    load_before: tuple[float, float, float],
) -> None:
    from importlib.metadata import version

    names = list(impls)
    current = names[0]
    orgs = [int(x) for x in args.orgs.split(",")]
    load_after = os.getloadavg()
    lines = [
        "# Cold-path benchmark results",
        "",
        f"- Command: `.venv/bin/python benchmarks/authz/cold.py {' '.join(sys.argv[1:])}`".rstrip()
        + "`",
        f"- Date: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(started))}; "
        f"{time.time() - started:.0f} s",
        f"- Machine: {os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{x:.2f}' for x in load_before)} at the start, "
        f"{', '.join(f'{x:.2f}' for x in load_after)} at the end (shared: read ratios)",
        f"- Python {platform.python_version()}; cedarpy {version('cedarpy')}, "
        f"pycasbin {version('casbin')}",
        f"- {args.questions} questions per organization count (run.py's workload, seed "
        f"{args.seed}), {args.rounds} rounds, implementations alternated per round, each in its "
        "own process; µs per call, median over rounds of each round's p50 / p99",
        "",
    ]
    lines[2] = lines[2].removesuffix("`")
    for name in names:
        lines += [
            f"## {name}",
            "",
            "| subject orgs | cold check | cold Engine | cold, memos empty | parse_subject | compile_subject | warm check | cedarpy (preloaded) | pycasbin (preloaded) |",  # noqa: E501
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for n in orgs:
            c = result[name][str(n)]
            lines.append(
                f"| {n:,} | "
                + " | ".join(f"{c[w]['p50_us']:.2f} / {c[w]['p99_us']:.2f}" for w in COLUMNS)
                + " |"
            )
        lines.append("")
    lines += [
        "JSON decoding of the document, and over HTTP the request model's walk of it, are not "
        "included: they are O(size of the document) and happen before watchword's code runs.",
        "",
        "## Targets (issue 14), on the current tree",
        "",
        "| subject orgs | cold check p50 µs (< 20) | ÷ cedarpy p50 (< 1) | warm check ÷ baseline warm check (p50, ≤ 1 within noise) |",  # noqa: E501
        "|---:|---:|---:|---:|",
    ]
    for n in orgs:
        c = result[current][str(n)]
        cold = c["cold check"]["p50_us"]
        vs_cedar = cold / c["cedarpy"]["p50_us"]
        base = (
            f"{c['warm check']['p50_us'] / result[names[1]][str(n)]['warm check']['p50_us']:.2f}"
            if len(names) > 1
            else "-"
        )
        verdict = "met" if cold < 20 and vs_cedar < 1 else "**not met**"
        lines.append(f"| {n:,} | {cold:.2f} ({verdict}) | {vs_cedar:.2f} | {base} |")
    lines.append("")
    args.out.write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
