"""Output and invocation of the RBAC commands (as ``watchword.cli.output`` for the rest)."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.table import Table

from watchword.cli.output import console, emit, fail, run_with_services
from watchword.errors import InvalidInput
from watchword.rbac.store.record import Page
from watchword.services import Services

__all__ = ["Cursor", "JsonOpt", "Limit", "deleted", "json_arg", "listed", "page_of", "run"]

R = TypeVar("R")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
Limit = Annotated[int, typer.Option(help="Page size (1-500).")]
Cursor = Annotated[str | None, typer.Option(help="next_cursor of the previous page.")]


def run(
    ctx: typer.Context,
    body: Callable[[Services], Coroutine[Any, Any, Any]],
    as_json: bool,
    columns: Sequence[str] = (),
) -> None:
    result = run_with_services(ctx, body, as_json=as_json)
    data = _plain(result)

    def human() -> None:
        rows = data.get("items") if isinstance(data, dict) and "items" in data else data
        if isinstance(rows, list) and columns:
            table = Table(*columns)
            for row in rows:
                table.add_row(*(_cell(row.get(c)) for c in columns))
            console.print(table)
            if isinstance(data, dict) and data.get("next_cursor"):
                console.print(f"more: --cursor {data['next_cursor']}")
        else:
            console.print_json(json.dumps(data, default=str))

    emit(data, as_json=as_json, human=human)


def _plain(value: object) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) if not isinstance(v, dict) else v.get("id", str(v)) for v in value)
    return "" if value is None else str(value)


def page_of(items: Sequence[BaseModel], next_cursor: str | None) -> dict[str, object]:
    return {"items": list(items), "next_cursor": next_cursor}


def listed(page: Page[R], out: Callable[[R], BaseModel]) -> dict[str, object]:
    """A store page as the commands print it, each record in its wire form."""
    return page_of([out(r) for r in page.items], page.next_cursor)


def deleted(key: str) -> dict[str, str]:
    return {"deleted": key}


def json_arg(value: str, what: str) -> Any:
    """A JSON value, or ``@FILE`` to read it from a file."""
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
        return json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        fail(InvalidInput(f"{what}: not valid JSON ({exc})"))
