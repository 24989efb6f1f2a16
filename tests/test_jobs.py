"""Background jobs: a job that dies stops the worker; shutdown never waits forever."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from watchword.jobs import Job, JobFailed, run_jobs, start_jobs, stop_jobs
from watchword.services import Services


async def test_run_jobs_a_job_that_dies_stops_the_others_and_raises(services: Services) -> None:
    stopped = asyncio.Event()

    async def dies(stop: asyncio.Event) -> None:
        raise RuntimeError("boom")

    async def waits(stop: asyncio.Event) -> None:
        await stop.wait()
        stopped.set()

    with pytest.raises(JobFailed, match="dies"):
        await run_jobs(services, asyncio.Event(), jobs=[Job("dies", dies), Job("waits", waits)])
    assert stopped.is_set()


async def test_run_jobs_returns_when_asked_to_stop(services: Services) -> None:
    stop = asyncio.Event()

    async def waits(stop: asyncio.Event) -> None:
        await stop.wait()

    async def ask() -> None:
        stop.set()

    await asyncio.gather(run_jobs(services, stop, jobs=[Job("waits", waits)]), ask())


async def test_stop_jobs_cancels_a_job_that_ignores_the_stop_event() -> None:
    async def stubborn(stop: asyncio.Event) -> None:
        await asyncio.Event().wait()  # never looks at stop

    stop = asyncio.Event()
    tasks = start_jobs([Job("stubborn", stubborn)], stop)
    await stop_jobs(tasks, stop, grace=timedelta(milliseconds=50))
    assert tasks[0].cancelled()
