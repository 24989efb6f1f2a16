"""Warm checks (a subject compiled once, asked again and again) of this tree against a
baseline revision, each in its own process, rounds alternated.

    .venv/bin/python benchmarks/authz/warm.py --baseline 0e61654 --out benchmarks/authz/warm.md

The workload is ``run.py``'s (same seed, same questions), handed to each process as JSON
documents (the policy, the subject, the objects), which both revisions parse with their own
``parse_policy`` / ``parse_subject`` / ``parse_object``: no code of this tree runs in the
baseline's process. Each process compiles the subject once, asks every question once (the
steady state), then times whole passes over the questions (no timer per call: a pass of
2,000 checks is timed, ``--passes`` of them, best pass kept); ns per check. A round runs
every implementation once; the table gives the median over rounds and the per-round ratios.
"""

from __future__ import annotations

import argparse
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
ROOT = HERE.parents[1]


def child(workload: Path, passes: int) -> None:
    """In the measured process: parse with whichever watchword is importable, then time."""
    from watchword.authz import check, compile_subject, parse_object, parse_policy, parse_subject

    out: dict[str, float] = {}
    for n, w in json.loads(workload.read_text()).items():
        policy = parse_policy(w["policy"])
        compiled = compile_subject(policy, parse_subject(w["subject"]))
        qs = [(a, parse_object(o)) for a, o in w["questions"]]
        for a, o in qs:
            check(compiled, a, o)
        best = float("inf")
        pc = time.perf_counter_ns
        for _ in range(passes):
            t0 = pc()
            for a, o in qs:
                check(compiled, a, o)
            best = min(best, (pc() - t0) / len(qs))
        out[n] = best
    print(json.dumps(out))


def workload(orgs: list[int], questions: int, seed: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import importlib

    run = importlib.import_module("run")
    docs: dict[str, Any] = {}
    for n in orgs:
        w = run.build_workload(n, questions, seed)
        policy = {
            "resource_types": w.policy.registry.to_dict(),
            "roles": [r.to_dict() for r in w.policy.roles.values()],
        }
        docs[str(n)] = {
            "policy": policy,
            "subject": w.subject.to_dict(),
            "questions": [[a, o.to_dict()] for a, o in w.questions],
        }
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "warm.md")
    ap.add_argument("--orgs", default="1,10,100,1000")
    ap.add_argument("--questions", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--passes", type=int, default=15)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--baseline", required=True, help="git revision to compare with")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.passes)
        return
    orgs = [int(x) for x in args.orgs.split(",")]
    started, load_before = time.time(), os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="ww-warm-"))
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    tree = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        data = tmp / "workload.json"
        data.write_text(json.dumps(workload(orgs, args.questions, args.seed)))
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tmp / "base"), rev],
            check=True, capture_output=True,
        )  # fmt: skip
        impls = {f"current ({tree})": ROOT / "src", f"baseline ({rev})": tmp / "base" / "src"}
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in impls}
        for r in range(args.rounds):
            names = list(impls)[r % 2 :] + list(impls)[: r % 2]
            for name in names:
                done = subprocess.run(
                    [sys.executable, __file__, "--baseline", rev, "--child", str(data),
                     "--passes", str(args.passes)],
                    env={**os.environ, "PYTHONPATH": str(impls[name])},
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                rounds[name].append(json.loads(done.stdout))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "base")],
            check=False, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)
    cur, base = (rounds[name] for name in impls)
    lines = [
        "# Warm checks: this tree against a baseline",
        "",
        f"- Command: `.venv/bin/python {' '.join(sys.argv)}`",
        f"- Date: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(started))}; "
        f"{time.time() - started:.0f} s",
        f"- Machine: {os.cpu_count()} CPUs, load average {load_before[0]:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end (shared: read ratios)",
        f"- Python {platform.python_version()}; {args.questions} questions of run.py's "
        f"workload (seed {args.seed}), best of {args.passes} timed passes per process, "
        f"{args.rounds} rounds alternated; ns per check",
        "",
        "| subject orgs | current ns | baseline ns | current ÷ baseline (median of rounds) "
        "| per-round ratios |",
        "|---:|---:|---:|---:|---|",
    ]
    for n in (str(x) for x in orgs):
        c = [x[n] for x in cur]
        b = [x[n] for x in base]
        ratios = [x / y for x, y in zip(c, b, strict=True)]
        lines.append(
            f"| {int(n):,} | {statistics.median(c):.0f} | {statistics.median(b):.0f} | "
            f"{statistics.median(ratios):.2f} | "
            + ", ".join(f"{r:.2f}" for r in sorted(ratios))
            + " |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
