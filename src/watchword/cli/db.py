"""``watchword db``: schema migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from watchword.cli.output import console, emit, fail, settings_from
from watchword.errors import WatchwordError
from watchword.storage import migrate
from watchword.storage.db import redacted_url

app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


@app.command()
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "heads",
) -> None:
    """Migrate the database up to the newest schema (or REVISION)."""
    settings = settings_from(ctx)
    try:
        with console.status(f"migrating {redacted_url(settings.database.url)} to {revision}…"):
            migrate.upgrade(settings.database.url, revision)
        status = migrate.current_revisions(settings.database.url)
    except WatchwordError as exc:
        fail(exc)
    console.print(
        f"{redacted_url(settings.database.url)} is at {', '.join(sorted(status.current))}"
    )


@app.command()
def downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision: an id, -1, or base.")],
) -> None:
    """Migrate the database down to REVISION (data in dropped tables is lost)."""
    settings = settings_from(ctx)
    try:
        with console.status(f"migrating {redacted_url(settings.database.url)} to {revision}…"):
            migrate.downgrade(settings.database.url, revision)
        status = migrate.current_revisions(settings.database.url)
    except WatchwordError as exc:
        fail(exc)
    console.print(
        f"{redacted_url(settings.database.url)} is at "
        f"{', '.join(sorted(status.current)) or 'base (empty)'}"
    )


@app.command()
def current(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the database's schema revision and whether it is the newest."""
    settings = settings_from(ctx)
    try:
        status = migrate.current_revisions(settings.database.url)
    except WatchwordError as exc:
        fail(exc, as_json=as_json)
    data = {
        "database": redacted_url(settings.database.url),
        "current": sorted(status.current),
        "heads": sorted(status.heads),
        "up_to_date": status.is_current,
    }

    def human() -> None:
        state = "up to date" if status.is_current else "behind: run `watchword db upgrade`"
        console.print(
            f"{data['database']}: {', '.join(data['current']) or 'empty'} ({state})"  # type: ignore[arg-type]
        )

    emit(data, as_json=as_json, human=human)
