"""``watchword policy test FILE…``: unit tests for policies, like ``opa test``.

Exit codes: 0 every case passed, 1 a case failed (a readable diff is printed), 2 a file is
malformed (the message points at the bad field).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from watchword.authz import PolicyTestReport, run_policy_test_text
from watchword.cli.output import EXIT_FAILURE, console, fail
from watchword.errors import InvalidInput, WatchwordError

NAME = "policy"
app = typer.Typer(help="Policy authoring tools.", no_args_is_help=True)


@app.command("test")
def run_tests(
    files: Annotated[
        list[Path],
        typer.Argument(help="YAML documents of roles, subjects, objects and expected decisions."),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable results.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List passing cases.")] = False,
) -> None:
    """Run policy test files; print a diff of every failing case and exit 1 if any fails."""
    reports: dict[str, PolicyTestReport] = {}
    for path in files:
        try:
            text = path.read_text()
        except OSError as exc:
            fail(InvalidInput(f"{path}: cannot be read ({exc.strerror})"), as_json=as_json)
        try:
            reports[str(path)] = run_policy_test_text(text)
        except WatchwordError as exc:
            where = f" at {exc.pointer}" if exc.pointer else ""
            exc.detail = f"{path}{where}: {exc.detail}"
            fail(exc, as_json=as_json)
    passed = sum(len(r.results) - len(r.failures) for r in reports.values())
    failed = sum(len(r.failures) for r in reports.values())
    if as_json:
        doc = {
            "passed": passed,
            "failed": failed,
            "files": {k: v.to_dict() for k, v in reports.items()},
        }
        print(json.dumps(doc, indent=2))
    else:
        for name, report in reports.items():
            for result in report.results:
                if not result.passed:
                    console.print(f"[bold red]FAIL[/] {name}", highlight=False)
                    console.print(result.diff(), highlight=False, markup=False)
                    console.print()
                elif verbose:
                    console.print(
                        f"[green]PASS[/] {name}: case {result.index} ({result.name})",
                        highlight=False,
                    )
        colour = "red" if failed else "green"
        console.print(f"[bold {colour}]{passed} passed, {failed} failed[/]")
    if failed:
        raise typer.Exit(EXIT_FAILURE)
