"""Background jobs: the long-running loops a process runs beside (or instead of) HTTP.

``watchword serve`` runs them inside the HTTP server's lifespan; ``watchword worker`` runs
them alone, for deployments that keep background work off the serving replicas. Each job
takes a stop event and returns soon after it is set. Jobs that must run on one replica at
a time take a lease themselves (the janitor does), so running them everywhere is safe.

- ``token_invalidation``: revocations published by other replicas, applied to this
  process's verification cache at once (returns at once without Redis);
- ``token_janitor``: the token janitor every ``token_janitor_every``, under a lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from watchword.observability.logging import get_logger
from watchword.services import Services
from watchword.tokens.invalidation import run_invalidation_listener

__all__ = ["Job", "background_jobs", "run_jobs", "start_jobs", "stop_jobs"]

log = get_logger("watchword.jobs")


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    run: Callable[[asyncio.Event], Awaitable[None]]


def background_jobs(services: Services) -> list[Job]:
    """The jobs of a process, bound to its services."""
    settings = services.runtime.settings

    async def invalidations(stop: asyncio.Event) -> None:
        await run_invalidation_listener(services.runtime.redis, services.tokens.cache, stop=stop)

    async def janitor(stop: asyncio.Event) -> None:
        await services.janitor.run_forever(every=settings.tokens.janitor_every, stop=stop)

    return [Job("token_invalidation", invalidations), Job("token_janitor", janitor)]


def start_jobs(jobs: list[Job], stop: asyncio.Event) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(_logged(job, stop), name=job.name) for job in jobs]


async def stop_jobs(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Ask every job to stop and wait for all of them."""
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_jobs(services: Services, stop: asyncio.Event) -> None:
    """Run every job until ``stop`` is set (``watchword worker``)."""
    tasks = start_jobs(background_jobs(services), stop)
    try:
        await stop.wait()
    finally:
        await stop_jobs(tasks, stop)


async def _logged(job: Job, stop: asyncio.Event) -> None:
    log.info("job_started", job=job.name)
    try:
        await job.run(stop)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # A job that dies is logged by name; the others keep running.
        log.error("job_failed", job=job.name, error_type=type(exc).__name__)
        raise
    finally:
        log.info("job_stopped", job=job.name)
