from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from watchword.api.app import create_app
from watchword.config import load_settings
from watchword.runtime import Runtime
from watchword.services import Services


async def test_healthz_ok(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_readyz_ok_names_each_check(client: httpx.AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"database": {"status": "ok"}, "schema": {"status": "ok"}}


async def _get(runtime: Runtime, path: str) -> httpx.Response:
    services = Services.build(runtime)
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.get(path)
    finally:
        await services.aclose()


async def test_readyz_unmigrated_database_is_503_naming_schema(tmp_path: Path) -> None:
    rt = Runtime.create(
        load_settings(environ={}, database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    )
    try:
        r = await _get(rt, "/readyz")
    finally:
        await rt.close()
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "not_ready" and body["checks"]["schema"]["code"] == "schema_outdated"
    assert "schema" in body["detail"]


async def test_readyz_unreachable_database_is_503_naming_database() -> None:
    rt = Runtime.create(
        load_settings(
            environ={},
            database_url="postgresql+psycopg://u:pw@127.0.0.1:1/x",
            database_connect_timeout="2s",
        )
    )
    try:
        r = await _get(rt, "/readyz")
    finally:
        await rt.close()
    assert r.status_code == 503
    assert r.json()["checks"]["database"]["code"] == "database_unavailable"
    assert "pw" not in r.text


async def test_readyz_failure_says_what_failed_never_the_connection_string() -> None:
    rt = Runtime.create(
        load_settings(
            environ={},
            database={
                "url": "postgresql+psycopg://u@127.0.0.1:1/x?password=pw-in-query",
                "connect_timeout": "2s",
            },
        )
    )
    try:
        r = await _get(rt, "/readyz")
    finally:
        await rt.close()
    database = r.json()["checks"]["database"]
    assert database["status"] == "failing" and database["detail"]
    assert "pw-in-query" not in r.text and "postgresql" not in r.text


@pytest.mark.redis
async def test_readyz_checks_redis_when_configured(tmp_path: Path, redis_url: str) -> None:
    good = Runtime.create(
        load_settings(environ={}, database_url="sqlite+aiosqlite:///:memory:", redis_url=redis_url)
    )
    bad = Runtime.create(
        load_settings(
            environ={},
            database_url="sqlite+aiosqlite:///:memory:",
            redis_url="redis://127.0.0.1:1/0",
        )
    )
    try:
        from watchword.storage.migrate import upgrade_engine

        await upgrade_engine(good.engine)
        await upgrade_engine(bad.engine)
        ok = await _get(good, "/readyz")
        failing = await _get(bad, "/readyz")
    finally:
        await good.close()
        await bad.close()
    assert ok.status_code == 200 and ok.json()["checks"]["redis"] == {"status": "ok"}
    assert failing.status_code == 503
    assert failing.json()["checks"]["redis"]["code"] == "redis_unavailable"
    assert failing.json()["detail"] == "failing: redis"


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    await client.get("/healthz")
    await client.get("/no/such/thing")
    text = (await client.get("/metrics")).text
    assert 'watchword_http_requests_total{method="GET",route="/healthz",status="200"} 2.0' in text
    assert 'route="unmatched",status="404"' in text
    assert "/no/such/thing" not in text
    assert "watchword_http_request_duration_seconds_bucket" in text


async def test_openapi_lists_versioned_routes(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "watchword"
    paths = set(spec["paths"])
    expected = {
        "/readyz", "/metrics", "/v1/admin/whoami", "/v1/authz/check", "/v1/authz/explain",
        "/v1/authz/filter", "/v1/tokens", "/v1/oauth/introspect", "/v1/oauth/revoke",
        "/v1/acl", "/v1/organizations", "/v1/roles", "/v1/resource-types", "/v1/issuers",
    }  # fmt: skip
    assert expected <= paths, expected - paths
    assert (await client.get("/docs")).status_code == 200
