"""Shared CLI plumbing: settings from the root ``--config``, output, errors → exit codes.

Exit codes: 0 success, 1 failure (the operation could not be done), 2 usage or
configuration error.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from watchword.config import Settings, load_settings
from watchword.errors import ConfigurationError, InvalidInput, WatchwordError
from watchword.services import Services

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliState",
    "console",
    "emit",
    "fail",
    "jsonable",
    "run_with_services",
    "settings_from",
]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
T = TypeVar("T")


@dataclass(slots=True)
class CliState:
    config_file: str | None = None
    settings: Settings | None = None


def settings_from(ctx: typer.Context) -> Settings:
    state: CliState = ctx.ensure_object(CliState)
    if state.settings is None:
        try:
            state.settings = load_settings(state.config_file)
        except ConfigurationError as exc:
            fail(exc)
    return state.settings


def fail(exc: WatchwordError, *, as_json: bool = False) -> NoReturn:
    code = EXIT_USAGE if isinstance(exc, ConfigurationError | InvalidInput) else EXIT_FAILURE
    if as_json:
        print(json.dumps({"error": {"code": exc.code, "detail": exc.detail}}))
    else:
        err_console.print(f"[bold red]error[/] ({exc.code}): {exc.detail}", soft_wrap=True)
    raise typer.Exit(code)


def jsonable(view: Mapping[str, Any]) -> dict[str, Any]:
    """A record's public view for output: datetimes as ISO 8601 strings."""
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in view.items()
    }


def emit(data: Any, *, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        human()


def run_with_services(
    ctx: typer.Context,
    body: Callable[[Services], Coroutine[Any, Any, T]],
    *,
    as_json: bool = False,
    require_schema: bool = True,
) -> T:
    """Open a runtime and its services, run ``body``, close them; domain errors become exit
    codes."""
    settings = settings_from(ctx)

    async def run() -> T:
        async with Services.open(settings) as services:
            if require_schema:
                await services.runtime.prepare_schema()
            return await body(services)

    try:
        return asyncio.run(run())
    except WatchwordError as exc:
        fail(exc, as_json=as_json)
