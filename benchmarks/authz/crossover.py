"""Where filtering through prepare() overtakes checking object by object.

    .venv/bin/python benchmarks/authz/crossover.py --out benchmarks/authz/crossover.md

Same workload as run.py; each measurement starts from a freshly compiled subject (a request
compiles its subject once), median of 15. The result sets FILTER_PREPARE_THRESHOLD.
"""

from __future__ import annotations

import argparse
import runpy
import statistics
import time
from pathlib import Path

from watchword.authz import check, compile_subject, prepare

bench = runpy.run_path(str(Path(__file__).with_name("run.py")), run_name="authz_bench")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("benchmarks/authz/crossover.md"))
    args = ap.parse_args()
    lines = [
        "# filter: one-by-one checks vs prepare() + generated filter",
        "",
        "Command: `.venv/bin/python benchmarks/authz/crossover.py --out "
        "benchmarks/authz/crossover.md`; median of 15, fresh compiled subject each time.",
        "",
        "| subject orgs | objects | one by one µs | prepared µs | ratio (prepared ÷ loop) |",
        "|---|---|---|---|---|",
    ]
    for n_orgs in (1, 1000):
        w = bench["build_workload"](n_orgs, 10, 4)
        for n in (10, 100, 500, 1000, 2000, 5000):
            objs = w.objects[:n]
            loop, prep = [], []
            for _ in range(15):
                c = compile_subject(w.policy, w.subject)
                t0 = time.perf_counter_ns()
                [o for o in objs if check(c, "read", o).allowed]
                loop.append(time.perf_counter_ns() - t0)
                c = compile_subject(w.policy, w.subject)
                t0 = time.perf_counter_ns()
                prepare(c, "read", bench["TYPE"]).filter(objs)
                prep.append(time.perf_counter_ns() - t0)
            a, b = statistics.median(loop) / 1000, statistics.median(prep) / 1000
            lines.append(f"| {n_orgs} | {n:,} | {a:.0f} | {b:.0f} | {b / a:.2f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
