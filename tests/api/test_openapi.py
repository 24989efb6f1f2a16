"""The OpenAPI document describes every answer: a schemathesis run over every operation.

Each operation gets ``MAX_EXAMPLES`` generated requests (derandomized: the same ones every
run), sent in-process with an administrator's credential, and each answer is checked: no
5xx, a documented status, the documented content type, a body matching its schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from watchword.api.app import create_app
from watchword.api.problem import PROBLEM_JSON
from watchword.bootstrap import create_admin_key
from watchword.config import load_settings
from watchword.runtime import Runtime
from watchword.services import Services
from watchword.storage.db import create_engine_for_url
from watchword.storage.migrate import upgrade_engine

MAX_EXAMPLES = 8
BASE_URL = "http://testserver"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_dict(create_app(load_settings(environ={})).openapi())


@dataclass(frozen=True, slots=True)
class Served:
    """An ASGI client of the app, driven from synchronous tests through an event loop thread."""

    portal: BlockingPortal
    client: httpx.AsyncClient
    admin: dict[str, str]

    def request(self, kwargs: dict[str, Any]) -> httpx.Response:
        kwargs = {k: v for k, v in kwargs.items() if v not in (None, {}, [])}
        kwargs.pop("cookies", None)
        if isinstance(kwargs.get("data"), bytes | str):
            kwargs["content"] = kwargs.pop("data")
        return self.portal.call(partial(self.client.request, **kwargs))


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """The app over a migrated in-memory database, and an administrator's headers; all in
    one event loop."""
    runtime = Runtime(
        # Generated requests carry bad credentials too: the failed-authentication limit (tested
        # on its own) would otherwise turn later examples into 429s.
        settings=load_settings(environ={}, auth={"failed_limit": "off"}),
        engine=create_engine_for_url("sqlite+aiosqlite:///:memory:"),
    )
    services = Services.build(runtime)
    transport = httpx.ASGITransport(app=create_app(services=services), raise_app_exceptions=False)

    async def prepare() -> str:
        await upgrade_engine(runtime.engine)
        _, secret = await create_admin_key(runtime.engine, runtime.clock)
        return secret.reveal()

    with start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
        secret = portal.call(prepare)
        try:
            yield Served(portal, client, {"Authorization": f"Bearer {secret}"})
        finally:
            portal.call(client.aclose)
            portal.call(services.aclose)
            portal.call(runtime.close)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_openapi_every_answer_is_documented(case: schemathesis.Case[Any], served: Served) -> None:
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=served.admin)
    response = served.request(kwargs)
    case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))


def test_openapi_errors_are_problem_json_and_fastapi_422_is_gone() -> None:
    document = create_app(load_settings(environ={})).openapi()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    patch = document["paths"]["/v1/organizations/{organization_id}"]["patch"]["responses"]
    assert set(patch) >= {"200", "400", "401", "403", "404", "409", "412", "413", "422", "428"}
    for status, response in patch.items():
        if status != "200":
            assert list(response["content"]) == [PROBLEM_JSON], status
    assert set(document["paths"]["/healthz"]["get"]["responses"]) == {"200"}
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
