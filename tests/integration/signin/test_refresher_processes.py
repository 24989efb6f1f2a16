"""The background refresher across real processes, killed: three ``watchword worker`` processes
on one PostgreSQL database keep sessions fresh against the real provider (refresh-token
rotation on: a refresh token presented twice is refused with ``invalid_grant``, logged as
``grant.error``, and revokes the whole grant), while the test SIGKILLs one of them again and
again, at random moments and on purpose while it holds a session's refresh lock, and starts a
replacement each time.

What must hold whatever the timing (the timing only drives the scenario):

* no refresh token is ever presented twice: not one ``grant.error`` at the provider;
* no session is lost: each one is either active, or needs a new sign-in because a kill landed
  between a refresh's intent and its outcome (``refresh_interrupted``: by design, the token
  may have been rotated, so it is not replayed); nothing else;
* once one worker is left alone, every active session is refreshed again (so are sessions
  signed in then, which no kill can touch) and no intent stays unresolved;
* each session is refreshed once per token lifetime: every refresh was decided with at most
  ``grace`` left on the token it replaced (the new one has ``TTL > grace`` left);
* every refresh a worker recorded was granted by the provider (grants >= recorded ones; the
  difference is refreshes whose holder died after the provider answered).

``WATCHWORD_TEST_KILL_SEED`` replays a run's kill schedule (the seed is printed).
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from sqlalchemy.engine import make_url
from tests.conftest import PgDatabases
from tests.integration.signin.conftest import BASE, SigninFactory, live_env
from tests.oidc.plugin import OidcProvider, OidcProviderFactory
from tests.support.live import LiveWorker, LiveWorkers

from watchword.clock import SystemClock

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SESSIONS = 20
CONTROL = 3  # signed in once the kills stopped: refreshed by the lone worker, never killed
WORKERS = 3
TTL_S = 20  # the provider's access-token lifetime
GRACE_S = 12  # refreshed 12 s before expiry: a cycle of about 8 s
CHAOS_S = 60.0  # how long workers are killed (the scenario, not an assertion)
SETTLE_TIMEOUT_S = 180.0  # generous bound for the lone worker to refresh every session
TARGET_WAIT_S = 6.0  # how long a targeted kill waits for a refresh in flight
RUNNING_TIMEOUT_S = 120.0  # generous bound for a replacement worker to start
REFRESHER = {
    "WATCHWORD_REFRESHER__GRACE": f"{GRACE_S}s",
    "WATCHWORD_REFRESHER__COOL_OFF": "2s",
    "WATCHWORD_REFRESHER__LEASE": "6s",
    "WATCHWORD_REFRESHER__CALL_TIMEOUT": "5s",
    "WATCHWORD_REFRESHER__SHARDS": "8",
    "WATCHWORD_REFRESHER__POLL_INTERVAL": "1s",
}


def _conninfo(database_url: str) -> str:
    url = make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _rows(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT id, state, state_reason, intent_fence, refreshed_at, access_expires_at, "
        "refresh_due_at, refresh_failures, last_error FROM sessions ORDER BY id"
    ).fetchall()


def _interrupted(rows: list[dict[str, Any]]) -> int:
    return sum(1 for r in rows if r["state"] != "active")


def _refresh_holder_pids(conn: psycopg.Connection[Any]) -> set[int]:
    """Pids holding a session's claim now (``lease_holder`` is ``host:pid:random``)."""
    holders = conn.execute(
        "SELECT lease_holder FROM sessions WHERE intent_fence IS NOT NULL AND lease_until > now()"
    ).fetchall()
    return {int(str(h["lease_holder"]).split(":")[1]) for h in holders}


def _grants(provider: OidcProvider) -> tuple[int, list[dict[str, Any]]]:
    events = provider.events()
    refreshes = sum(
        1
        for e in events
        if e.get("event") == "grant.success" and e.get("grant_type") == "refresh_token"
    )
    errors = [
        e
        for e in events
        if e.get("event") in {"grant.error", "server_error"} and not _aborted_by_a_kill(e)
    ]
    return refreshes, errors


def _aborted_by_a_kill(event: dict[str, Any]) -> bool:
    """A token request whose body never finished arriving: the worker sending it was killed.

    The provider rejects it before reading any parameter (``invalid_request``, detail
    ``aborted``), so no refresh token in it was redeemed or counted as reused; a reuse is
    ``invalid_grant``, which stays an error.
    """
    return (
        event.get("event") == "grant.error"
        and str(event.get("error", "")).startswith("InvalidRequest")
        and event.get("detail") == "aborted"
    )


def _dump(rows: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"  {r['id'][:12]} {r['state']} fence={r['intent_fence']} refreshed={r['refreshed_at']} "
        f"due={r['refresh_due_at']} failures={r['refresh_failures']} "
        f"reason={r['state_reason']!r} error={r['last_error']!r}"
        for r in rows
    )


@pytest.mark.parametrize("signin_database", [None])  # not both back-ends: PostgreSQL, made here
async def test_three_workers_killed_at_random_lose_no_session_and_never_present_a_token_twice(
    oidc_provider_factory: OidcProviderFactory,
    signin_app: SigninFactory,
    live_worker: LiveWorkers,
    pg_databases: PgDatabases,
) -> None:
    seed = int(os.environ.get("WATCHWORD_TEST_KILL_SEED") or secrets.randbits(32))
    print(f"kill schedule seed: WATCHWORD_TEST_KILL_SEED={seed}")
    rng = random.Random(seed)  # a test schedule, not a secret
    started_at = time.monotonic()

    database_url = pg_databases.create("ww_refresh_kill")
    provider = oidc_provider_factory(ttl={"AccessToken": TTL_S})
    secret_key = secrets.token_urlsafe(32)  # the same in every process: each opens the seals
    # The app that signs people in (in-process, on the shared database; migrates it).
    made = await signin_app(
        provider,
        database_url=database_url,
        clock=SystemClock(),
        secret_key=secret_key,
        refresher={"grace": f"{GRACE_S}s", "cool_off": "2s"},
    )
    env = live_env(provider, secret_key=secret_key) | REFRESHER
    env |= {"WATCHWORD_DATABASE__URL": database_url, "WATCHWORD_ISSUER_URL": BASE}

    workers: list[LiveWorker] = []
    killed: set[int] = set()
    started = 0

    def spawn() -> LiveWorker:
        nonlocal started
        started += 1
        worker = live_worker(env, name=f"w{started}", wait=False)
        workers.append(worker)
        return worker

    def check_none_died_by_itself(killed: set[int]) -> None:
        for worker in workers:
            if worker.pid not in killed and not worker.alive:
                worker.wait_started()  # fails the test with its log: it exited by itself

    def live() -> list[LiveWorker]:
        return [w for w in workers if w.pid not in killed]

    for _ in range(WORKERS):
        spawn()
    for n in range(SESSIONS):  # one grant per session: a fresh browser at both ends
        made.client.cookies.clear()
        made.agent.cookies.clear()
        done = await made.sign_in(login="alice" if n % 2 else "bob")
        assert done.status_code == 302, done.text
    for worker in workers:
        worker.wait_started()

    kinds: Counter[str] = Counter()
    with psycopg.connect(_conninfo(database_url), autocommit=True, row_factory=dict_row) as conn:
        rows = _rows(conn)
        assert len(rows) == SESSIONS and {r["state"] for r in rows} == {"active"}

        # --- chaos: kill one worker every few seconds, start a replacement at once ---------
        deadline = time.monotonic() + CHAOS_S
        # Stop early when half the sessions were interrupted: the rest must stay observable.
        while time.monotonic() < deadline and _interrupted(_rows(conn)) < SESSIONS // 2:
            await asyncio.sleep(rng.uniform(0.5, 4.0))
            # A victim among the workers whose refresher runs (a replacement still importing
            # is no test); wait until two of the three run.
            until = time.monotonic() + RUNNING_TIMEOUT_S
            while len(running := [w for w in live() if w.started()]) < WORKERS - 1:
                check_none_died_by_itself(killed)
                assert time.monotonic() < until, f"workers do not start: {live()}"
                await asyncio.sleep(0.1)
            victim: LiveWorker | None = None
            if rng.random() < 0.5:  # while it holds a session's refresh lock
                by_pid = {w.pid: w for w in running}
                until = time.monotonic() + TARGET_WAIT_S
                while victim is None and time.monotonic() < until:
                    holding = _refresh_holder_pids(conn) & set(by_pid)
                    if holding:
                        victim = by_pid[rng.choice(sorted(holding))]
                        # somewhere in the refresh: before its intent, in the call, after it
                        await asyncio.sleep(rng.uniform(0.0, 0.2))
                        kinds["in_flight"] += 1
                    else:
                        await asyncio.sleep(0.02)
            if victim is None:
                victim = rng.choice(running)
                kinds["random"] += 1
            victim.kill()
            killed.add(victim.pid)
            spawn()
        chaos_s = time.monotonic() - started_at
        interrupted_after_chaos = _interrupted(_rows(conn))

        # --- quiet: one worker left alone ----------------------------------------------------
        check_none_died_by_itself(killed)
        alive = sorted(live(), key=lambda w: not w.started())  # a running one survives
        survivor = alive[0]
        for worker in alive[1:]:
            worker.kill()
            killed.add(worker.pid)
            kinds["quiet"] += 1
        survivor.wait_started()
        quiet_from = datetime.now(UTC)
        before = {r["id"] for r in _rows(conn)}
        for n in range(CONTROL):
            made.client.cookies.clear()
            made.agent.cookies.clear()
            done = await made.sign_in(login="alice" if n % 2 else "bob")
            assert done.status_code == 302, done.text
        control = {r["id"] for r in _rows(conn)} - before
        settle_until = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            rows = _rows(conn)
            settled = all(
                r["intent_fence"] is None
                and (r["state"] != "active" or (r["refreshed_at"] or quiet_from) > quiet_from)
                for r in rows
            )
            if settled:
                break
            if not survivor.alive or time.monotonic() > settle_until:
                pytest.fail(
                    f"seed {seed}: the lone worker did not refresh every active session (or "
                    f"left an intent) within {SETTLE_TIMEOUT_S:g} s (alive: {survivor.alive}):\n"
                    f"{_dump(rows)}\nits log:\n{survivor.log_text()[-6000:]}",
                    pytrace=False,
                )
            await asyncio.sleep(0.5)
    survivor.stop()

    # --- what the workers recorded -------------------------------------------------------------
    refreshed = [
        r for w in workers for r in w.log_records() if r.get("event") == "session_refreshed"
    ]
    crashed = [
        r
        for w in workers
        for r in w.log_records()
        if r.get("event") in {"background_refresh_crashed", "job_failed"}
    ]
    per_session = Counter(str(r["session_id"]) for r in refreshed)
    grants, errors = _grants(provider)
    active = [r for r in rows if r["state"] == "active"]
    interrupted = [r for r in rows if r["state"] != "active"]
    lefts = [float(r["time_left_s"]) for r in refreshed]  # type: ignore[arg-type]
    print(
        f"seed {seed}: {len(killed)} kills ({dict(kinds)}), {started} workers started; "
        f"chaos until {chaos_s:.0f} s, total {time.monotonic() - started_at:.0f} s; "
        f"{len(active)} active, {len(interrupted)} interrupted "
        f"({interrupted_after_chaos} when the kills stopped); provider refresh grants {grants}, "
        f"refreshes recorded {len(refreshed)} (per session {sorted(per_session.values())}); "
        f"time left when refreshed: min {min(lefts, default=0):.1f} s, "
        f"max {max(lefts, default=0):.1f} s"
    )

    # (a) No refresh token was presented twice (nor did the provider fail).
    assert errors == [], f"seed {seed}: {errors}"
    # A killed worker may leave one half-sent token request behind, never more.
    assert sum(1 for e in provider.events() if _aborted_by_a_kill(e)) <= len(killed)
    # (b) No session lost: active and refreshed since the quiet phase began, or interrupted by
    # a kill between intent and outcome; nothing else.
    assert len(rows) == SESSIONS + CONTROL and len(control) == CONTROL
    for row in interrupted:
        assert row["state"] == "reauth_required", _dump(rows)
        assert str(row["state_reason"]).startswith("refresh_interrupted"), _dump(rows)
    for row in active:
        assert row["refreshed_at"] > quiet_from, _dump(rows)
        assert row["access_expires_at"] > row["refreshed_at"], _dump(rows)
        assert row["refresh_due_at"] is not None and per_session[row["id"]] >= 1, _dump(rows)
    # However many the kills interrupted, the sessions signed in after them are kept fresh.
    assert control <= {r["id"] for r in active}, _dump(rows)
    # (c) No intent left unresolved (the loop above waited for it).
    assert all(r["intent_fence"] is None for r in rows)
    # Once per lifetime: every refresh was decided inside its token's refresh window.
    assert refreshed and all(left <= GRACE_S for left in lefts), sorted(lefts)[-5:]
    # (d) Every refresh recorded was granted by the provider, no more: the rest of the grants
    # are refreshes whose holder was killed after the provider answered.
    assert set(per_session) <= {r["id"] for r in rows}
    assert len(refreshed) <= grants
    # No worker crashed by itself, and none of their refreshes raised.
    assert crashed == [], crashed
