"""``watchword sessions``: list, show and revoke signed-in sessions (never their tokens)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from watchword.cli.output import EXIT_FAILURE, console, emit, jsonable, run_with_services
from watchword.services import Services
from watchword.sessions import SessionFilter, SessionRecord

__all__ = ["NAME", "app"]

NAME = "sessions"
app = typer.Typer(help="Signed-in sessions: list, show, revoke, refresh.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _view(record: SessionRecord, services: Services, *, claims: bool = False) -> dict[str, Any]:
    data = jsonable(record.public_view(services.sessions.idle_timeout))
    if claims:
        data["claims"] = dict(record.claims)
    return data


@app.command("list")
def list_(
    ctx: typer.Context,
    issuer: Annotated[str | None, typer.Option(help="Only sessions of this issuer.")] = None,
    subject: Annotated[str | None, typer.Option(help="Only sessions of this subject.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only sessions of this provider.")] = None,
    organization: Annotated[
        str | None, typer.Option(help="Only sessions of this organization's members.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List sessions, newest last."""

    async def body(services: Services) -> dict[str, Any]:
        page = await services.sessions.page(
            SessionFilter(
                issuer=issuer, subject=subject, provider=provider, organization_id=organization
            ),
            limit=limit,
            cursor=cursor,
        )
        return {
            "items": [_view(r, services) for r in page.items],
            "next_cursor": page.next_cursor,
        }

    data = run_with_services(ctx, body, as_json=as_json)

    def human() -> None:
        table = Table("provider", "subject", "email", "signed in")
        table.add_column("id", no_wrap=True, min_width=30)  # ids are never cut
        for item in data["items"]:
            table.add_row(
                item["provider"],
                item["subject"],
                item["email"] or "",
                item["signed_in_at"][:16],
                item["id"],
            )
        console.print(table)
        if data["next_cursor"]:
            console.print(f"more: --cursor {data['next_cursor']}")

    emit(data, as_json=as_json, human=human)


@app.command()
def show(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(help="Id of the session (ses_…).")],
    as_json: JsonOpt = False,
) -> None:
    """Show one session with its claims snapshot (never its tokens)."""

    async def body(services: Services) -> dict[str, Any]:
        return _view(await services.sessions.get(session_id), services, claims=True)

    data = run_with_services(ctx, body, as_json=as_json)

    def human() -> None:
        for key, value in data.items():
            console.print(f"[bold]{key}[/]: {value}", soft_wrap=True)

    emit(data, as_json=as_json, human=human)


@app.command()
def revoke(
    ctx: typer.Context,
    session_id: Annotated[
        str | None, typer.Argument(help="Id of the session to end (or --issuer/--subject).")
    ] = None,
    issuer: Annotated[str | None, typer.Option(help="With --subject: every session.")] = None,
    subject: Annotated[str | None, typer.Option(help="Sign this subject out everywhere.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """End a session, or every session of a subject (--issuer and --subject); the upstream
    refresh tokens are revoked where the provider offers it."""
    if (session_id is None) == (subject is None) or (subject is not None and issuer is None):
        raise typer.BadParameter("give a session id, or --issuer and --subject")

    async def body(services: Services) -> dict[str, Any]:
        if session_id is not None:
            record = await services.sessions.get(session_id)
            ended = await services.signin.end_sessions([record.id], reason="admin")
        else:
            ended = await services.signin.end_subject(issuer or "", subject or "")
        return {"ended": ended}

    data = run_with_services(ctx, body, as_json=as_json)
    emit(data, as_json=as_json, human=lambda: console.print(f"ended {data['ended']} session(s)"))


@app.command()
def refresh(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(help="Id of the session to refresh now.")],
    as_json: JsonOpt = False,
) -> None:
    """Refresh a session's upstream tokens now, through the refresh-once lock (exit 1 when
    the provider refused or could not be reached)."""

    async def body(services: Services) -> dict[str, Any]:
        await services.sessions.get(session_id)  # not_found first
        result = await services.refresher.refresh(session_id, force=True)
        view = _view(result.record, services) if result.record is not None else None
        return {"outcome": result.outcome.value, "session": view}

    data = run_with_services(ctx, body, as_json=as_json)
    emit(data, as_json=as_json, human=lambda: console.print(f"{session_id}: {data['outcome']}"))
    if data["outcome"] not in {"refreshed", "not_due"}:
        raise typer.Exit(EXIT_FAILURE)
