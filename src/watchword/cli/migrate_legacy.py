"""``watchword migrate legacy-groups FILE [--dry-run]``: import groups from a user-database
model (groups referencing user records) as subjects; see ``watchword.rbac.legacy``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from watchword.cli.output import console, emit, err_console, fail, run_with_services
from watchword.errors import InvalidInput
from watchword.rbac.legacy import Change, parse_export
from watchword.rbac.store.legacy import import_legacy_groups
from watchword.services import Services

__all__ = ["NAME", "app"]

NAME = "migrate"
app = typer.Typer(help="Migrations of data from other systems.", no_args_is_help=True)


@app.command("legacy-groups")
def legacy_groups(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The legacy export (JSON).", exists=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would change.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Fill group subjects from user records (lower-cased email, watchword's issuer) where a
    group has none; idempotent; the legacy userIds are kept."""
    try:
        data = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        fail(InvalidInput(f"{file}: cannot read the export ({exc})"), as_json=as_json)
    try:
        export = parse_export(data)
    except InvalidInput as exc:
        fail(InvalidInput(f"{file}: {exc.pointer or '/'}: {exc.detail}"), as_json=as_json)

    async def body(services: Services) -> list[Change]:
        with err_console.status("importing legacy groups…", spinner="dots"):
            return list(await import_legacy_groups(services.store, export, dry_run=dry_run))

    plan = run_with_services(ctx, body, as_json=as_json)
    rows = [c.to_dict() for c in plan]

    def human() -> None:
        title = "would change (dry run)" if dry_run else "changed"
        table = Table(
            "group", "organization", "action", "subjects", "unresolved", "reason", title=title
        )
        for r in rows:
            table.add_row(
                str(r["group"]),
                str(r["organization"]),
                str(r["action"]),
                ", ".join(r["subjects"]),  # type: ignore[arg-type]
                ", ".join(r["unresolved_user_ids"]),  # type: ignore[arg-type]
                str(r["reason"]),
            )
        console.print(table)

    emit({"dry_run": dry_run, "changes": rows}, as_json=as_json, human=human)
