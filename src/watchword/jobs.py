"""Background jobs: the long-running loops a process runs beside (or instead of) HTTP.

``watchword serve`` runs them inside the HTTP server's lifespan; ``watchword worker`` runs
them alone, for deployments that keep background work off the serving replicas. Each job
takes a stop event and returns soon after it is set. Jobs that must run on one replica at
a time take a lease themselves (the janitor does), so running them everywhere is safe.

- ``change_listener`` (PostgreSQL only): other processes' writes to the policy and admin keys,
  heard by ``LISTEN`` and marked in this process's change watch, so the caches that serve
  decisions read the database only after a change (:mod:`watchword.storage.changes`);
- ``token_invalidation`` (with Redis only): revocations published by other replicas, applied
  to this process's verification cache at once;
- ``token_janitor``: the token janitor every ``token_janitor_every``, under a lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from watchword.observability.logging import get_logger
from watchword.services import SESSIONS_CHANGED, SESSIONS_ENDED, Services
from watchword.storage.changes import listen_for_changes
from watchword.tokens.invalidation import run_invalidation_listener

__all__ = [
    "STOP_GRACE",
    "Job",
    "JobFailed",
    "background_jobs",
    "run_jobs",
    "start_jobs",
    "stop_jobs",
]

log = get_logger("watchword.jobs")


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    run: Callable[[asyncio.Event], Awaitable[None]]


def background_jobs(services: Services, *, serving: bool = False) -> list[Job]:
    """The jobs of a process, bound to its services (each configured in ``services.py``).
    ``serving``: inside ``watchword serve``, where the session refresher runs only with
    ``refresher.in_serve``."""

    async def invalidations(stop: asyncio.Event) -> None:
        await run_invalidation_listener(services.runtime.redis, services.tokens.cache, stop=stop)

    async def changes(stop: asyncio.Event) -> None:
        await listen_for_changes(services.runtime.engine, stop=stop)

    async def janitor(stop: asyncio.Event) -> None:
        await services.janitor.run_forever(stop=stop)

    async def session_janitor(stop: asyncio.Event) -> None:
        await services.signin.run_janitor(stop=stop)

    async def session_feed(stop: asyncio.Event) -> None:
        sessions, background = services.sessions, services.background

        def changed(ids: list[str]) -> None:
            sessions.invalidate(ids)  # refreshed elsewhere: new claims, maybe a new state
            background.wake.set()  # new sessions: the refresher schedules them at once

        await asyncio.gather(
            services.feed.listen(
                SESSIONS_ENDED, sessions.forget, on_connect=sessions.forget_all, stop=stop
            ),
            services.feed.listen(
                SESSIONS_CHANGED, changed, on_connect=sessions.forget_all, stop=stop
            ),
        )

    async def session_refresher(stop: asyncio.Event) -> None:
        await services.background.run(stop=stop)

    jobs = [Job("token_janitor", janitor), Job("session_janitor", session_janitor)]
    settings = services.runtime.settings
    if settings.oidc.providers and (not serving or settings.refresher.in_serve):
        jobs.append(Job("session_refresher", session_refresher))
    if services.feed.name != "none":  # ended and refreshed sessions reach other processes
        jobs.append(Job("session_feed", session_feed))
    if services.runtime.redis is not None:  # revocations reach other replicas over pub/sub
        jobs.insert(0, Job("token_invalidation", invalidations))
    if services.runtime.engine.dialect.name == "postgresql":  # others' policy changes
        jobs.insert(0, Job("change_listener", changes))
    return jobs


def start_jobs(jobs: list[Job], stop: asyncio.Event) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(_logged(job, stop), name=job.name) for job in jobs]


STOP_GRACE: Final = timedelta(seconds=10)


async def stop_jobs(
    tasks: list[asyncio.Task[None]], stop: asyncio.Event, *, grace: timedelta = STOP_GRACE
) -> None:
    """Ask every job to stop, wait up to ``grace`` for them, then cancel the stragglers (a
    janitor deep in a large sweep must not hold shutdown)."""
    stop.set()
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace.total_seconds())
    for task in pending:
        log.warning("job_cancelled_at_shutdown", job=task.get_name())
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class JobFailed(Exception):
    """A background job ended on its own (it raised, or returned before being asked to)."""


async def run_jobs(
    services: Services, stop: asyncio.Event, *, jobs: list[Job] | None = None
) -> None:
    """Run every job until ``stop`` is set (``watchword worker``). A job that ends on its own
    stops the others and raises :class:`JobFailed`, so the worker exits non-zero and its
    supervisor restarts it, instead of looking healthy while doing nothing."""
    tasks = start_jobs(background_jobs(services) if jobs is None else jobs, stop)
    stopping = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        failed = [t.get_name() for t in done if t is not stopping]
        if failed and not stop.is_set():
            raise JobFailed(f"background job(s) ended: {', '.join(failed)}")
    finally:
        stopping.cancel()
        await stop_jobs(tasks, stop)


async def _logged(job: Job, stop: asyncio.Event) -> None:
    log.info("job_started", job=job.name)
    try:
        await job.run(stop)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # Logged by name; `watchword worker` then stops (run_jobs), `serve` keeps the others.
        log.error("job_failed", job=job.name, error_type=type(exc).__name__)
        raise
    finally:
        log.info("job_stopped", job=job.name)
