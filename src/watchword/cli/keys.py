"""``watchword keys rotate``: re-encrypt every session's upstream tokens under the first key.

Batches of ``--batch`` rows, each row re-sealed and written only if it did not change since
it was read; the rows still to do are those whose ``key_id`` is not the first key's, so an
interrupted run resumes where it stopped when run again. A row sealed under a key that is no
longer configured cannot be opened: its session ends (the person signs in again), and the
count says how many.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from watchword.cli.output import console, emit, run_with_services
from watchword.services import Services

__all__ = ["NAME", "app"]

NAME = "keys"
app = typer.Typer(help="Keys encrypting upstream tokens at rest.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


@app.command()
def rotate(
    ctx: typer.Context,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per batch.")] = 500,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count sessions per key id; change nothing.")
    ] = False,
    end_unreadable: Annotated[
        bool,
        typer.Option(
            "--end-unreadable",
            help="End sessions sealed under a key no longer configured (default: stop).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-encrypt every session under the first key of sessions.keys (resumable)."""

    async def body(services: Services) -> dict[str, Any]:
        sealer = services.sessions.sealer
        if dry_run:
            by_key = await services.sessions.sealed_by_key()
            return {
                "key_id": sealer.primary_id,
                "sessions_by_key": by_key,
                "to_reseal": sum(n for k, n in by_key.items() if k != sealer.primary_id),
                "unknown_keys": sorted(set(by_key) - set(sealer.key_ids)),
            }
        todo = await services.sessions.count_to_reseal()
        done = unreadable = 0
        progress = Progress(
            TextColumn("re-encrypting sessions"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=as_json or not console.is_terminal,
        )
        with progress:
            task = progress.add_task("rotate", total=todo)
            while True:
                resealed, lost = await services.sessions.reseal_batch(
                    limit=batch, end_unreadable=end_unreadable
                )
                if resealed == 0 and lost == 0:
                    break
                done += resealed
                unreadable += lost
                progress.update(task, advance=resealed + lost)
        left = await services.sessions.count_to_reseal()
        return {
            "key_id": sealer.primary_id,
            "resealed": done,
            "ended_unreadable": unreadable,
            "remaining": left,
        }

    data = run_with_services(ctx, body, as_json=as_json)
    if dry_run:
        emit(data, as_json=as_json, human=lambda: console.print(data))
        return
    emit(
        data,
        as_json=as_json,
        human=lambda: console.print(
            f"{data['resealed']} session(s) now under key {data['key_id']!r}; "
            f"{data['ended_unreadable']} unreadable (ended); {data['remaining']} remaining"
        ),
    )
