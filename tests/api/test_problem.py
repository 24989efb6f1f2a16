from __future__ import annotations

import json

import httpx
import pytest
import structlog
from fastapi import FastAPI
from pydantic import BaseModel

from watchword.errors import InvalidInput, NotAMember, VersionConflict, WatchwordError
from watchword.observability.logging import LogFormat, configure_logging


class Body(BaseModel):
    name: str
    size: int


async def test_unknown_route_is_problem_json_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "not_found" and body["status"] == 404
    assert body["type"].endswith("/not_found") and body["instance"] == "/v1/nothing-here"
    assert body["request_id"] == r.headers["x-request-id"]


async def test_wrong_method_is_problem_json_405(client: httpx.AsyncClient) -> None:
    r = await client.delete("/healthz")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"


async def test_405_allow_lists_every_method_served_at_the_path(client: httpx.AsyncClient) -> None:
    r = await client.put("/v1/organizations")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    one = await client.post("/v1/organizations/org-1")
    assert one.status_code == 405 and one.headers["allow"] == "DELETE, GET, PATCH"


async def test_request_id_is_echoed_or_created(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    created = (await client.get("/healthz")).headers["x-request-id"]
    assert len(created) == 32
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert unsafe.headers["x-request-id"] != "bad id\nwith newline"


async def test_domain_errors_map_to_status_and_code(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    cases: dict[str, WatchwordError] = {
        "invalid": InvalidInput("bad field", pointer="/name"),
        "member": NotAMember("not yours"),
        "stale": VersionConflict("changed"),
        "boom": WatchwordError("internal thing"),
    }

    def make(exc: WatchwordError) -> object:
        async def raiser() -> None:
            raise exc

        return raiser

    for name, exc in cases.items():
        app.add_api_route(f"/test/{name}", make(exc))  # type: ignore[arg-type]

    expected = {
        "invalid": (400, "invalid_request"),
        "member": (403, "not_a_member"),
        "stale": (412, "version_conflict"),
        "boom": (500, "internal"),
    }
    for name, (status, code) in expected.items():
        r = await client.get(f"/test/{name}")
        assert (r.status_code, r.json()["code"]) == (status, code), name
    assert (await client.get("/test/invalid")).json()["pointer"] == "/name"


async def test_unexpected_exception_is_generic_500(app: FastAPI, client: httpx.AsyncClient) -> None:
    async def crash() -> None:
        raise RuntimeError("password=hunter2 leaked?")

    app.add_api_route("/test/crash", crash)
    r = await client.get("/test/crash")
    assert r.status_code == 500 and r.json()["code"] == "internal"
    assert "hunter2" not in r.text


async def test_unexpected_exception_500_carries_the_request_id_and_is_logged_once(
    app: FastAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    async def crash() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/test/crash", crash)
    configure_logging("info", LogFormat.JSON)
    try:
        # raise_app_exceptions: an exception escaping the app would fail the request here
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/test/crash", headers={"X-Request-ID": "req-500"})
    finally:
        structlog.reset_defaults()
    assert r.status_code == 500 and r.headers["x-request-id"] == "req-500"
    assert r.json()["request_id"] == "req-500"
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    errors = [x for x in lines if x.get("event") == "unhandled_error"]
    assert len(errors) == 1 and errors[0]["request_id"] == "req-500"
    assert "RuntimeError" in errors[0]["exception"]
    access = [x for x in lines if x.get("event") == "request"]
    assert [(x["status"], x["request_id"]) for x in access] == [(500, "req-500")]


async def test_validation_error_points_at_the_field(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def create(body: Body) -> dict[str, str]:
        return {"name": body.name}

    app.add_api_route("/test/create", create, methods=["POST"])
    r = await client.post("/test/create", json={"name": "x", "size": "big"})
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "invalid_request" and body["pointer"] == "/size"
