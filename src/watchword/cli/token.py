"""``watchword token``: create, list, rotate, revoke and check API tokens; run the janitor.

``check`` works offline (no configuration, no database): it validates a token's shape
and checksum, the way a secret scanner would. Pass ``-`` to read the token from stdin
and keep it out of the process list and shell history.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from watchword.cli.output import EXIT_FAILURE, console, emit, fail, jsonable, run_with_services
from watchword.config import parse_duration
from watchword.errors import InvalidInput, TokenMalformed
from watchword.services import Services
from watchword.tokens import (
    IssuedToken,
    NewToken,
    Owner,
    Permission,
    TokenKind,
    TokenRecord,
    parse,
)

__all__ = ["NAME", "app"]

NAME = "token"
STDIN = "-"
app = typer.Typer(
    help="API tokens: create, list, rotate, revoke, check, janitor.", no_args_is_help=True
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _record_dict(record: TokenRecord, now: datetime) -> dict[str, object]:
    return jsonable(record.public_view(now))


def _issued(issued: IssuedToken, now: datetime, as_json: bool) -> None:
    data = {**_record_dict(issued.record, now), "token": issued.token.reveal()}
    if as_json:
        print(json.dumps(data))
        return
    console.print(
        f"Token [bold]{issued.record.id}[/] ({issued.record.kind.label}). "
        "Store it now; it is not shown again:"
    )
    console.print(issued.token.reveal(), soft_wrap=True)


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A name to recognize the token by.")],
    owner_subject: Annotated[str, typer.Option(help="Subject id the token acts as.")],
    owner_issuer: Annotated[
        str | None, typer.Option(help="Issuer of the subject (default: WATCHWORD_ISSUER_URL).")
    ] = None,
    kind: Annotated[
        str, typer.Option(help="personal, service_account or integration.")
    ] = "personal",
    scope: Annotated[list[str] | None, typer.Option(help="resource:action; repeat.")] = None,
    read_write: Annotated[bool, typer.Option("--read-write", help="Allow writes.")] = False,
    organization: Annotated[str | None, typer.Option(help="Organization id.")] = None,
    expires_in: Annotated[str | None, typer.Option(help="Lifetime such as 30d or 12h.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token; it is printed once."""
    try:
        token_kind = TokenKind.from_label(kind)
    except ValueError:
        fail(
            InvalidInput("--kind must be personal, service_account or integration"),
            as_json=as_json,
        )
    lifetime: timedelta | None = None
    if expires_in:
        try:
            parsed = parse_duration(expires_in)
        except ValueError as exc:
            fail(InvalidInput(f"--expires-in: {exc}"), as_json=as_json)
        if not isinstance(parsed, timedelta):  # pragma: no cover - a str always parses to one
            fail(InvalidInput("--expires-in must be a duration"), as_json=as_json)
        lifetime = parsed

    async def body(services: Services) -> tuple[IssuedToken, datetime]:
        now = services.runtime.clock.now()
        spec = NewToken(
            kind=token_kind,
            name=name,
            owner=Owner(owner_issuer or services.runtime.settings.issuer_url, owner_subject),
            scopes=frozenset(scope or ()),
            permission=Permission.READ_WRITE if read_write else Permission.READ_ONLY,
            organization_id=organization,
            expires_at=now + lifetime if lifetime is not None else None,
        )
        return await services.tokens.create(spec), now

    issued, now = run_with_services(ctx, body, as_json=as_json)
    _issued(issued, now, as_json)


@app.command("list")
def list_(
    ctx: typer.Context,
    owner_subject: Annotated[str | None, typer.Option(help="Only this subject's tokens.")] = None,
    owner_issuer: Annotated[str | None, typer.Option(help="Issuer of --owner-subject.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List tokens (never their secrets)."""

    async def body(services: Services) -> dict[str, object]:
        owner = (
            Owner(owner_issuer or services.runtime.settings.issuer_url, owner_subject)
            if owner_subject
            else None
        )
        page = await services.tokens.list(owner=owner, cursor=cursor, limit=limit)
        now = services.runtime.clock.now()
        return {
            "items": [_record_dict(r, now) for r in page.items],
            "next_cursor": page.next_cursor,
        }

    data = run_with_services(ctx, body, as_json=as_json)

    def human() -> None:
        table = Table("id", "prefix", "kind", "name", "owner", "state", "expires_at")
        for item in data["items"]:  # type: ignore[attr-defined]
            table.add_row(
                item["id"],
                item["prefix"],
                item["kind"],
                item["name"],
                item["owner_subject"],
                item["state"],
                item["expires_at"] or "never",
            )
        console.print(table)
        if data["next_cursor"]:
            console.print(f"more: --cursor {data['next_cursor']}")

    emit(data, as_json=as_json, human=human)


@app.command()
def rotate(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="Id of the token to replace.")],
    as_json: JsonOpt = False,
) -> None:
    """Replace a token; the old one stays valid for the grace period. Prints the new one."""

    async def body(services: Services) -> tuple[IssuedToken, datetime]:
        return await services.tokens.rotate(token_id), services.runtime.clock.now()

    issued, now = run_with_services(ctx, body, as_json=as_json)
    _issued(issued, now, as_json)


@app.command()
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="Id of the token to revoke.")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token now."""

    async def body(services: Services) -> dict[str, object]:
        record = await services.tokens.revoke(token_id)
        return _record_dict(record, services.runtime.clock.now())

    data = run_with_services(ctx, body, as_json=as_json)
    emit(data, as_json=as_json, human=lambda: console.print(f"revoked {data['id']}"))


@app.command()
def check(
    token: Annotated[str, typer.Argument(help="The token, or - to read it from stdin.")],
    as_json: JsonOpt = False,
) -> None:
    """Validate a token's format and checksum offline (no database). Exit 1 if malformed."""
    value = sys.stdin.readline().strip() if token == STDIN else token.strip()
    try:
        parsed = parse(value)
    except TokenMalformed as exc:
        if as_json:
            print(json.dumps({"valid": False, "code": exc.code}))
            raise typer.Exit(EXIT_FAILURE) from None
        fail(exc)
    data = {"valid": True, "kind": parsed.kind.label, "prefix": value[:8]}
    emit(
        data,
        as_json=as_json,
        human=lambda: console.print(
            f"well-formed {parsed.kind.label} token {value[:8]}… "
            "(checksum ok; not checked against the database)"
        ),
    )


@app.command()
def janitor(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, delete nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete tokens expired or revoked past retention, and legacy integration tokens."""

    async def body(services: Services) -> dict[str, object]:
        if as_json:
            return (await services.janitor.run(dry_run=dry_run)).as_dict()
        with console.status("sweeping tokens…"):
            return (await services.janitor.run(dry_run=dry_run)).as_dict()

    data = run_with_services(ctx, body, as_json=as_json)

    def human() -> None:
        if not data["ran"]:
            console.print("skipped: another replica holds the janitor lease")
            return
        verb = "would delete" if dry_run else "deleted"
        counts = ", ".join(f"{k} {v}" for k, v in data["deleted"].items())  # type: ignore[attr-defined]
        console.print(f"{verb} {data['total']} tokens ({counts})")

    emit(data, as_json=as_json, human=human)
