"""Entry point of the ``watchword`` command."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.table import Table

from watchword import __version__
from watchword.cli import authz as authz_commands
from watchword.cli import db as db_commands
from watchword.cli import edge as edge_commands
from watchword.cli import keys as keys_commands
from watchword.cli import migrate_legacy
from watchword.cli import policy as policy_commands
from watchword.cli import rbac as rbac_commands
from watchword.cli import sessions as sessions_commands
from watchword.cli import token as token_commands
from watchword.cli.output import (
    EXIT_FAILURE,
    CliState,
    console,
    emit,
    err_console,
    fail,
    run_with_services,
    settings_from,
)
from watchword.config import env_name
from watchword.errors import WatchwordError
from watchword.runtime import Runtime
from watchword.services import Services

app = typer.Typer(
    name="watchword",
    help="Identity broker and authorization engine for multi-tenant platforms.\n\n"
    "Exit codes: 0 ok, 1 failure, 2 usage or configuration error.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
admin_app = typer.Typer(help="Administrator credentials.", no_args_is_help=True)
app.add_typer(db_commands.app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(admin_app, name="admin")

# Each module exposes ``app`` (a Typer) and ``NAME`` (its command group), or ``GROUPS``.
for _module in (
    authz_commands,
    policy_commands,
    migrate_legacy,
    token_commands,
    sessions_commands,
    keys_commands,
    edge_commands,
):
    app.add_typer(_module.app, name=_module.NAME)
for _typer, _group in rbac_commands.GROUPS:
    app.add_typer(_typer, name=_group)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            help="TOML config file (also WATCHWORD_CONFIG_FILE); env vars override it.",
            metavar="FILE",
        ),
    ] = None,
) -> None:
    ctx.obj = CliState(config_file=config)
    # Logs go to stderr from the first command on, so stdout stays clean for --json.
    from watchword.observability.logging import configure_logging

    configure_logging("warning")


@app.command()
def version(as_json: JsonOpt = False) -> None:
    """Print watchword's version."""
    emit(
        {"version": __version__, "python": sys.version.split()[0]},
        as_json=as_json,
        human=lambda: console.print(f"watchword {__version__}"),
    )


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (WATCHWORD_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (WATCHWORD_PORT).")] = None,
) -> None:
    """Serve the HTTP API. Checks the database first and stops with a clear message."""
    import uvicorn

    from watchword.api.app import create_app
    from watchword.edge.service import load_table
    from watchword.observability.logging import configure_logging

    settings = settings_from(ctx)
    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if updates:
        settings = settings.model_copy(update=updates)
    configure_logging(settings.log.level, settings.log.format)

    async def preflight() -> None:
        runtime = Runtime.create(settings)
        try:
            load_table(settings.edge)  # a bad route table stops the start, naming the field
            status = await runtime.prepare_schema()
            await runtime.check_redis()
        finally:
            await runtime.close()
        err_console.print(
            f"watchword {__version__}: schema {', '.join(sorted(status.current))}, "
            f"serving on http://{settings.host}:{settings.port}"
        )

    try:
        asyncio.run(preflight())
    except WatchwordError as exc:
        fail(exc)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,  # the app believes X-Forwarded-* from edge.trusted_proxies itself
        loop=settings.server_loop,
        http=settings.server_http,
    )


@app.command()
def worker(ctx: typer.Context) -> None:
    """Run the background jobs (token janitor, revocation listener) without serving HTTP.

    Stops cleanly on SIGINT or SIGTERM. Jobs that must run on one replica at a time hold a
    lease, so any number of workers (and serving processes) can run side by side.
    """
    import signal

    from watchword.jobs import JobFailed, background_jobs, run_jobs
    from watchword.observability.logging import configure_logging

    settings = settings_from(ctx)
    configure_logging(settings.log.level, settings.log.format)

    async def work() -> None:
        async with Services.open(settings) as services:
            await services.runtime.prepare_schema()
            await services.runtime.check_redis()
            names = ", ".join(job.name for job in background_jobs(services))
            err_console.print(f"watchword {__version__} worker: running {names}")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            await run_jobs(services, stop)
        err_console.print("watchword worker: stopped")

    try:
        asyncio.run(work())
    except WatchwordError as exc:
        fail(exc)
    except JobFailed as exc:
        err_console.print(f"[bold red]error[/] (job_failed): {exc}", soft_wrap=True)
        raise typer.Exit(EXIT_FAILURE) from None


@config_app.command("show")
def config_show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Print the effective configuration, secrets redacted."""
    values = settings_from(ctx).redacted()

    def rows(node: dict[str, object], prefix: tuple[str | int, ...]) -> Iterator[list[str]]:
        for name, value in node.items():
            path = (*prefix, name)
            if isinstance(value, dict):
                yield from rows(value, path)
            elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
                for index, item in enumerate(value):
                    yield from rows(item, (*path, index))
            else:
                shown = "" if value is None else str(value)
                yield [".".join(map(str, path)), shown, env_name(path)]

    def human() -> None:
        table = Table("setting", "value", "environment variable")
        for column in table.columns:
            column.overflow = "fold"  # never cut a name or value short with "…"
        for row in rows(values, ()):
            table.add_row(*row)
        console.print(table)

    emit(values, as_json=as_json, human=human)


@admin_app.command("bootstrap")
def admin_bootstrap(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Create an administrator key. It is shown once; only its hash is stored."""
    from watchword.bootstrap import create_admin_key

    async def body(services: Services) -> dict[str, str]:
        runtime = services.runtime
        key, secret = await create_admin_key(runtime.engine, runtime.clock)
        return {"id": key.id, "key": secret.reveal(), "created_at": key.created_at.isoformat()}

    result = run_with_services(ctx, body, as_json=as_json)
    if as_json:
        print(json.dumps(result))
        return
    console.print(
        f"Created admin key [bold]{result['id']}[/]. Store it now; it is not shown again:"
    )
    console.print(result["key"], soft_wrap=True)
    console.print("Use it as: Authorization: Bearer <key>")


def main() -> None:
    app()
