"""The proxy configurations of ``watchword.edge.proxyconf``, run verbatim in real nginx and
Caddy in front of an echo app, with a stand-in for watchword whose answers each test sets.

The stand-in follows watchword's side of the contract: ``/auth/verify`` (and
``/auth/envoy/...``), routed on the percent-decoded path as watchword's server does, answers
what the test says; ``/auth/start`` (nginx's sign-in redirect) answers a browser with a 302 to
``/auth/login?rd=<X-Original-URI>`` and any other client with a problem+json 401; every
other path answers 200 with JSON of what it received (the sign-in pages). It records every
request, as the echo app does, so a test sees exactly what reached each side, and counts the
connections it accepted.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from tests.conftest import _unavailable
from tests.support.echo_app import EchoApp, Seen, seen_request
from tests.support.live import free_port
from tests.support.proxies import LiveCaddy, LiveNginx, LiveProxy
from typer.testing import CliRunner

from watchword.api.routes.signin import BINDING_COOKIE
from watchword.bootstrap import KEY_PREFIX
from watchword.cli.main import app as cli
from watchword.config import SessionSettings
from watchword.edge import proxyconf
from watchword.edge.proxyconf import DEFAULT_COOKIES, DEFAULT_HEADERS
from watchword.tokens.format import TokenKind, compose

IDENTITY = {name.lower() for name in DEFAULT_HEADERS}
ALICE = {
    "X-Watchword-Subject": "alice-id",
    "X-Watchword-Issuer": "https://idp.example",
    "X-Watchword-Email": "alice@example.com",
    "X-Watchword-Groups": "staff,ops",
    "X-Watchword-Organizations": "acme",
    "X-Watchword-Jwt-Assertion": "eyJhbGciOiJFUzI1NiJ9.e30.c2ln",
    "X-Forwarded-Access-Token": "at-123",
}
FORGED = {name: f"forged-{name.lower()}" for name in DEFAULT_HEADERS}


# The stand-in for watchword ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""


@dataclass
class StandIn:
    """A stand-in watchword on ``url``; ``verify`` is what /auth/verify answers."""

    port: int
    verify: Answer = Answer(200, ALICE)
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def to(self, path: str) -> list[Seen]:
        """The requests it got for ``path`` (query ignored)."""
        return [seen for seen in self.requests if seen.path.split("?")[0] == path]

    def answer(self, seen: Seen) -> Answer:
        path = seen.path.split("?")[0]
        if routed_to_forward_auth(seen.path):
            return self.verify
        if path == "/auth/start":
            original = seen.headers.get("x-original-uri", "/")
            if "text/html" in seen.headers.get("accept", ""):
                return Answer(302, {"Location": f"/auth/login?rd={quote(original, safe='')}"})
            problem = {"type": "about:blank", "status": 401, "original_uri": original}
            return Answer(401, {"Content-Type": "application/problem+json"}, json.dumps(problem))
        return Answer(200, {"Content-Type": "application/json"}, json.dumps(seen.as_json()))


class _StandInHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _StandInServer

    def _answer(self) -> None:
        seen = seen_request(self)
        stand_in = self.server.stand_in
        stand_in.requests.append(seen)
        answer = stand_in.answer(seen)
        body = answer.body.encode()
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class _StandInServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, stand_in: StandIn) -> None:
        self.stand_in = stand_in
        super().__init__(("127.0.0.1", stand_in.port), _StandInHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.stand_in.connections += 1  # one call per accepted connection
        super().process_request(request, client_address)


def routed_to_forward_auth(target: str) -> bool:
    """Whether watchword routes the request target ``target`` to its forward-auth endpoints
    (/auth/verify, /auth/envoy/...): uvicorn percent-decodes the path, Starlette matches it
    as it is (no dot segments resolved, no ``//`` merged). A prefix, to be strict."""
    return unquote(target.split("?", 1)[0]).startswith(("/auth/verify", "/auth/envoy"))


@contextmanager
def running_stand_in() -> Iterator[StandIn]:
    stand_in = StandIn(port=free_port())
    server = _StandInServer(stand_in)
    threading.Thread(target=server.serve_forever, name="stand-in", daemon=True).start()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def watchword() -> Iterator[StandIn]:
    with running_stand_in() as stand_in:
        yield stand_in


# The proxies -------------------------------------------------------------------------------


def start_nginx(
    live_nginx: LiveNginx,
    ww: StandIn,
    app: EchoApp | StandIn,
    headers: tuple[str, ...] = DEFAULT_HEADERS,
    cookies: tuple[str, ...] = DEFAULT_COOKIES,
) -> LiveProxy:
    return live_nginx(
        lambda listen: proxyconf.nginx_server(
            listen=listen,
            server_name="app.test",
            watchword=ww.url,
            app=app.url,
            headers=headers,
            cookies=cookies,
        )
    )


def start_caddy(
    live_caddy: LiveCaddy,
    ww: StandIn,
    app: EchoApp | StandIn,
    headers: tuple[str, ...] = DEFAULT_HEADERS,
    cookies: tuple[str, ...] = DEFAULT_COOKIES,
) -> LiveProxy:
    return live_caddy(
        lambda address: proxyconf.caddyfile_site(
            address=address, watchword=ww.url, app=app.url, headers=headers, cookies=cookies
        )
    )


@pytest.fixture(params=["nginx", "caddy"])
def proxy(
    request: pytest.FixtureRequest,
    live_nginx: LiveNginx,
    live_caddy: LiveCaddy,
    watchword: StandIn,
    echo_app: EchoApp,
) -> LiveProxy:
    """nginx or Caddy with the rendered configuration, between ``watchword`` and
    ``echo_app``."""
    if request.param == "nginx":
        return start_nginx(live_nginx, watchword, echo_app)
    return start_caddy(live_caddy, watchword, echo_app)


def identity_seen(seen: Seen, names: set[str] = IDENTITY) -> dict[str, str]:
    return {name: value for name, value in seen.headers.items() if name in names}


def only(requests: list[Seen]) -> Seen:
    assert len(requests) == 1, requests
    return requests[0]


BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
API = {"Accept": "application/json"}


# 1 and 2: the identity headers are watchword's alone ---------------------------------------

ANSWERS = {
    "all": ALICE,
    "none": {},
    "all-empty": dict.fromkeys(DEFAULT_HEADERS, ""),
    "some": {"X-Watchword-Subject": "bob-id", "X-Watchword-Email": ""},
}


@pytest.mark.parametrize("given_headers", ANSWERS.values(), ids=ANSWERS.keys())
def test_forged_identity_headers_never_reach_the_app_and_watchwords_values_do(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp, given_headers: dict[str, str]
) -> None:
    watchword.verify = Answer(200, given_headers)
    forged = {**FORGED, "x-watchword-subject": "forged-lower-case"}  # and a second spelling

    response = httpx.get(f"{proxy.url}/page", headers=list(forged.items()))

    assert response.status_code == 200
    app_seen = only(echo_app.requests)
    assert identity_seen(app_seen) == {
        name.lower(): value for name, value in given_headers.items() if value
    }
    assert identity_seen(only(watchword.to("/auth/verify"))) == {}


@pytest.mark.parametrize("kind", ["nginx", "caddy"])
def test_custom_header_names_are_the_ones_protected_and_copied(
    kind: str,
    live_nginx: LiveNginx,
    live_caddy: LiveCaddy,
    watchword: StandIn,
    echo_app: EchoApp,
) -> None:
    names = ("X-User", "X-Team")
    watchword.verify = Answer(200, {"X-User": "carol", "X-Watchword-Subject": "not-copied"})
    if kind == "nginx":
        proxy = start_nginx(live_nginx, watchword, echo_app, names)
    else:
        proxy = start_caddy(live_caddy, watchword, echo_app, names)

    httpx.get(f"{proxy.url}/", headers={"X-User": "mallory", "X-Team": "admins"})

    seen = only(echo_app.requests)
    assert identity_seen(seen, {"x-user", "x-team", "x-watchword-subject"}) == {"x-user": "carol"}


def test_lookalike_header_names_with_underscores_never_reach_the_app(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp
) -> None:
    # CGI-style servers (WSGI environ) read X_Watchword_Subject as X-Watchword-Subject.
    watchword.verify = Answer(200, {"X-Watchword-Subject": "alice-id"})

    httpx.get(
        f"{proxy.url}/",
        headers={"X_Watchword_Subject": "forged", "X-Watchword_Groups": "admins", "A_B": "c"},
    )

    seen = only(echo_app.requests)
    assert [name for name in seen.headers if "_" in name] == []
    assert identity_seen(seen) == {"x-watchword-subject": "alice-id"}


# 3 and 4: what the client gets when watchword says no ---------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_nginx_sends_a_browser_without_credentials_to_sign_in(
    method: str, live_nginx: LiveNginx, watchword: StandIn, echo_app: EchoApp
) -> None:
    proxy = start_nginx(live_nginx, watchword, echo_app)
    watchword.verify = Answer(401, {"WWW-Authenticate": 'Bearer realm="watchword"'})

    response = httpx.request(method, f"{proxy.url}/docs/a?b=1", headers=BROWSER, content="x=1")

    assert response.status_code == 302
    assert response.headers["location"] == "/auth/login?rd=%2Fdocs%2Fa%3Fb%3D1"
    start = only(watchword.to("/auth/start"))
    assert (start.method, start.path, start.body) == ("GET", "/auth/start", "")
    assert start.headers["x-original-uri"] == "/docs/a?b=1"
    assert start.headers["x-original-method"] == method
    assert start.headers["x-forwarded-host"] == f"127.0.0.1:{proxy.port}"
    assert start.headers["x-forwarded-proto"] == "http"
    assert echo_app.requests == []


def test_nginx_answers_an_api_client_without_credentials_401_problem_json(
    live_nginx: LiveNginx, watchword: StandIn, echo_app: EchoApp
) -> None:
    proxy = start_nginx(live_nginx, watchword, echo_app)
    watchword.verify = Answer(401)

    response = httpx.get(f"{proxy.url}/api/items", headers=API)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["original_uri"] == "/api/items"
    assert echo_app.requests == []


def test_caddy_passes_a_401_to_the_client_as_watchword_gave_it(
    live_caddy: LiveCaddy, watchword: StandIn, echo_app: EchoApp
) -> None:
    proxy = start_caddy(live_caddy, watchword, echo_app)
    problem = '{"status": 401}'
    watchword.verify = Answer(
        401, {"Content-Type": "application/problem+json", "WWW-Authenticate": "Bearer"}, problem
    )

    response = httpx.get(f"{proxy.url}/api/items", headers=API)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.text == problem
    assert echo_app.requests == []


def test_a_403_reaches_the_client_as_403_and_the_app_never_sees_the_request(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp
) -> None:
    watchword.verify = Answer(403, {"Content-Type": "text/plain"}, "denied by policy")

    response = httpx.post(f"{proxy.url}/admin", headers=BROWSER, content="delete=all")

    assert response.status_code == 403
    if proxy.kind == "caddy":  # nginx answers its own 403 page
        assert response.text == "denied by policy"
    assert echo_app.requests == []


def test_caddy_passes_a_302_from_verify_to_the_browser_with_its_location_and_cookie(
    live_caddy: LiveCaddy, watchword: StandIn, echo_app: EchoApp
) -> None:
    proxy = start_caddy(live_caddy, watchword, echo_app)
    location = f"{proxy.url}/auth/login?rd=%2Fdocs"
    watchword.verify = Answer(
        302, {"Location": location, "Set-Cookie": "ww_state=s1; Path=/auth/; HttpOnly"}
    )

    response = httpx.get(f"{proxy.url}/docs", headers=BROWSER)

    assert response.status_code == 302
    assert response.headers["location"] == location
    assert response.headers["set-cookie"] == "ww_state=s1; Path=/auth/; HttpOnly"
    assert echo_app.requests == []


def test_nginx_turns_any_other_answer_of_verify_into_500(
    live_nginx: LiveNginx, watchword: StandIn, echo_app: EchoApp
) -> None:
    # Why watchword answers nginx's /auth/verify 401, never 302: auth_request allows only
    # 2xx, 401 and 403.
    proxy = start_nginx(live_nginx, watchword, echo_app)
    watchword.verify = Answer(302, {"Location": "/auth/login"})

    response = httpx.get(f"{proxy.url}/docs", headers=BROWSER)

    assert response.status_code == 500
    assert echo_app.requests == []


# 5: the sign-in pages go to watchword, on the app's origin, unprotected ---------------------


def test_signin_pages_and_keys_go_to_watchword_unprotected_and_never_to_the_app(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp
) -> None:
    watchword.verify = Answer(403)  # anything asking /auth/verify would be refused
    host = f"127.0.0.1:{proxy.port}"
    forged = {
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-For": "203.0.113.9",
        "X-Original-URI": "/forged",
        **FORGED,
    }

    login = httpx.get(f"{proxy.url}/auth/login?rd=%2F", headers={**forged, "Cookie": "s=1"})
    callback = httpx.post(f"{proxy.url}/auth/callback", content="code=c1&state=s1")
    keys = httpx.get(f"{proxy.url}/.well-known/watchword/jwks.json")

    assert (login.status_code, callback.status_code, keys.status_code) == (200, 200, 200)
    page = only(watchword.to("/auth/login"))
    assert page.path == "/auth/login?rd=%2F"
    assert page.headers["host"] == host
    assert page.headers["x-forwarded-host"] == host
    assert page.headers["x-forwarded-proto"] == "http"
    assert page.headers["x-forwarded-for"] == "127.0.0.1"
    assert page.headers["cookie"] == "s=1"
    assert "x-original-uri" not in page.headers
    assert identity_seen(page) == {}
    assert only(watchword.to("/auth/callback")).body == "code=c1&state=s1"
    assert len(watchword.to("/.well-known/watchword/jwks.json")) == 1
    assert watchword.to("/auth/verify") == []
    assert echo_app.requests == []


def test_a_path_climbing_out_of_auth_never_reaches_the_app_unchecked(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp
) -> None:
    # Sent raw: HTTP clients remove the dot segments themselves. nginx matches locations on
    # the normalised path (/private: checked); Caddy may send it to watchword as it is.
    watchword.verify = Answer(403)
    request = f"GET /auth/../private HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n"
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(f"{request}Connection: close\r\n\r\n".encode())
        answer = sock.makefile("rb").read()

    assert answer.startswith(b"HTTP/1.1 ")
    assert echo_app.requests == []


# 6: the auth call: credentials, no body, the original request as the proxy saw it -----------


def test_the_auth_call_carries_cookie_and_authorization_but_not_the_body(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp
) -> None:
    body = "a" * 100_000  # past every buffer: nginx writes it to its temp folder
    credentials = {"Cookie": "ww_session=s1", "Authorization": "Bearer t1"}

    response = httpx.post(f"{proxy.url}/api/items?x=1", headers=credentials, content=body)

    assert response.status_code == 200
    verify = only(watchword.to("/auth/verify"))
    assert verify.headers["cookie"] == "ww_session=s1"
    assert verify.headers["authorization"] == "Bearer t1"
    assert verify.body == ""
    assert verify.headers.get("content-length", "0") == "0"
    assert verify.headers["x-forwarded-method"] == "POST"
    assert verify.headers["x-forwarded-uri"] == "/api/items?x=1"
    app_seen = only(echo_app.requests)
    assert (app_seen.method, app_seen.path, app_seen.body) == ("POST", "/api/items?x=1", body)
    assert app_seen.headers["authorization"] == "Bearer t1"


def test_the_client_cannot_change_what_watchword_is_told_of_the_original_request(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp
) -> None:
    forged = {
        "X-Original-URI": "/public",
        "X-Original-Method": "GET",
        "X-Original-URL": "https://evil.example/public",
        "X-Forwarded-Uri": "/public",
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
    }

    httpx.delete(f"{proxy.url}/admin/users/7?verify=no", headers=forged)

    verify = only(watchword.to("/auth/verify"))
    assert verify.path == "/auth/verify"  # the client's query does not reach it
    host = f"127.0.0.1:{proxy.port}"
    told = {name: verify.headers.get(name.lower()) for name in forged}
    if proxy.kind == "nginx":
        assert told == {
            "X-Original-URI": "/admin/users/7?verify=no",
            "X-Original-Method": "DELETE",
            "X-Original-URL": f"http://{host}/admin/users/7?verify=no",
            "X-Forwarded-Uri": "/admin/users/7?verify=no",
            "X-Forwarded-Method": "DELETE",
            "X-Forwarded-Host": host,
            "X-Forwarded-Proto": "http",
        }
    else:
        assert told == {
            "X-Original-URI": None,
            "X-Original-Method": None,
            "X-Original-URL": None,
            "X-Forwarded-Uri": "/admin/users/7?verify=no",
            "X-Forwarded-Method": "DELETE",
            "X-Forwarded-Host": host,
            "X-Forwarded-Proto": "http",
        }
    assert only(echo_app.requests).method == "DELETE"


# 8: watchword's cookies are watchword's: the app gets every other cookie, unchanged ---------

SESSION = "watchword_session=ses_1"
COOKIES = {
    # name: (the client's Cookie header or None for none, what the app gets or None)
    "alone": (SESSION, None),
    "absent": (None, None),
    "first": (f"{SESSION}; a=1; b=2", "a=1; b=2"),
    "middle": (f"a=1; {SESSION}; b=2", "a=1; b=2"),
    "last": (f"a=1; b=2; {SESSION}", "a=1; b=2"),
    "none-of-watchwords": ("a=1; b=2", "a=1; b=2"),
    "repeated": (
        "watchword_session=s1; a=1; watchword_session=s2; b=2; watchword_session=s3",
        "a=1; b=2",
    ),
    "repeated-adjacent": ("a=1; watchword_session=s1; watchword_session=s2", "a=1"),
    "repeated-alone": ("watchword_session=s1; watchword_session=s2", None),
    "every-form": (
        "__Host-watchword_session=s1; a=1; watchword_signin=b1; __Host-watchword_signin=b2; "
        "b=2; watchword_session=s2",
        "a=1; b=2",
    ),
    "only-watchwords": ("__Host-watchword_signin=b1; watchword_session=s1", None),
    "binding-cookie": ("a=1; watchword_signin=b1", "a=1"),
    "lookalikes": (
        "xwatchword_session=1; watchword_session_other=2; watchword_sessionx=3; "
        "Watchword_Session=4; a=watchword_session=5; _watchword_session=6; Host-watchword_signin=7",
        "xwatchword_session=1; watchword_session_other=2; watchword_sessionx=3; "
        "Watchword_Session=4; a=watchword_session=5; _watchword_session=6; Host-watchword_signin=7",
    ),
    "lookalikes-around-one": (
        f"watchword_session_other=2; {SESSION}; xwatchword_session=1",
        "watchword_session_other=2; xwatchword_session=1",
    ),
    "no-spaces": ("a=1;watchword_session=s1;b=2", "a=1;b=2"),
    # Starlette, as other cookie parsers, trims the name: " watchword_session " is the session.
    "spaces-around-the-name": ("a=1;  watchword_session = s1 ;b=2", "a=1;b=2"),
    "empty-value": ("watchword_session=; a=1", "a=1"),
    "empty-value-last": ("a=1; watchword_session=", "a=1"),
    "quoted-value": ('a="x y"; watchword_session="s1"; b=2', 'a="x y"; b=2'),
}


def app_cookie(seen: Seen) -> str | None:
    return seen.headers.get("cookie")


@pytest.mark.parametrize(("sent", "kept"), COOKIES.values(), ids=COOKIES.keys())
def test_the_app_never_gets_watchwords_cookies_and_gets_every_other(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp, sent: str | None, kept: str | None
) -> None:
    headers = {} if sent is None else {"Cookie": sent}

    response = httpx.get(f"{proxy.url}/page", headers=headers)

    assert response.status_code == 200
    assert app_cookie(only(echo_app.requests)) == kept
    # watchword itself is asked with the client's Cookie header as it is.
    assert only(watchword.to("/auth/verify")).headers.get("cookie") == sent


def test_the_signin_pages_get_watchwords_cookies(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp
) -> None:
    sent = "a=1; watchword_signin=b1; __Host-watchword_session=s1"

    login = httpx.get(f"{proxy.url}/auth/callback?code=c", headers={"Cookie": sent})
    keys = httpx.get(f"{proxy.url}/.well-known/watchword/jwks.json", headers={"Cookie": sent})

    assert (login.status_code, keys.status_code) == (200, 200)
    assert only(watchword.to("/auth/callback")).headers["cookie"] == sent
    assert only(watchword.to("/.well-known/watchword/jwks.json")).headers["cookie"] == sent
    assert echo_app.requests == []


@pytest.mark.parametrize("status", [401, 403])
def test_with_watchwords_cookies_the_request_is_still_asked_about_and_refused(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp, status: int
) -> None:
    # Whatever the cookie lines do, they do not take the request past the auth call.
    watchword.verify = Answer(status)

    response = httpx.get(
        f"{proxy.url}/page", headers={**API, "Cookie": f"a=1; {SESSION}; watchword_signin=b"}
    )

    assert response.status_code == status
    assert only(watchword.to("/auth/verify")).headers["cookie"] == (
        f"a=1; {SESSION}; watchword_signin=b"
    )
    assert echo_app.requests == []


def test_a_post_body_and_other_headers_pass_with_the_cookie_lines(
    proxy: LiveProxy, echo_app: EchoApp
) -> None:
    response = httpx.post(
        f"{proxy.url}/form?x=1",
        headers={"Cookie": f"{SESSION}; a=1", "Authorization": "Bearer t1"},
        content="k=v",
    )

    assert response.status_code == 200
    seen = only(echo_app.requests)
    assert (seen.method, seen.path, seen.body) == ("POST", "/form?x=1", "k=v")
    assert seen.headers["authorization"] == "Bearer t1"
    assert seen.headers["cookie"] == "a=1"


SEVERAL = {
    # name: (the Cookie headers, what the app gets from nginx, from Caddy)
    "each-keeps-one": (
        [f"a=1; {SESSION}", "watchword_signin=b1; b=2"],
        "a=1; b=2",
        "a=1, b=2",  # two Cookie headers: echo_app joins a repeated header with ", "
    ),
    # Caddy deletes the Cookie header when one of them is left empty: all of them.
    "one-left-empty": ([SESSION, "a=1"], "a=1", None),
}


@pytest.mark.parametrize(("sent", "nginx", "caddy"), SEVERAL.values(), ids=SEVERAL.keys())
def test_several_cookie_headers_lose_watchwords_cookies(
    proxy: LiveProxy,
    echo_app: EchoApp,
    sent: list[str],
    nginx: str | None,
    caddy: str | None,
) -> None:
    # Against RFC 6265 (one Cookie header), but a client may send several: none of them
    # may carry watchword's cookies on. nginx joins them with "; ", Caddy edits each.
    httpx.get(f"{proxy.url}/page", headers=[("Cookie", value) for value in sent])

    cookie = app_cookie(only(echo_app.requests))
    assert "watchword_" not in (cookie or "")
    assert cookie == (nginx if proxy.kind == "nginx" else caddy)


def _runs(count: int) -> str:
    """A Cookie header with ``count`` runs of watchword's cookies, each after another."""
    return "; ".join(f"watchword_session=s{i}; c{i}=v{i}" for i in range(count))


def test_every_run_of_watchwords_cookies_nginx_can_remove_is_removed(
    proxy: LiveProxy, echo_app: EchoApp
) -> None:
    # The start of the header, then NGINX_COOKIE_RUNS more, the last of two adjacent ones.
    runs = proxyconf.NGINX_COOKIE_RUNS
    sent = _runs(runs) + "; watchword_signin=b; watchword_session=s"

    httpx.get(f"{proxy.url}/page", headers={"Cookie": sent})

    assert app_cookie(only(echo_app.requests)) == "; ".join(f"c{i}=v{i}" for i in range(runs))


def test_past_what_nginx_can_remove_the_app_gets_no_cookie_and_caddy_removes_them_all(
    proxy: LiveProxy, echo_app: EchoApp
) -> None:
    runs = 2 + proxyconf.NGINX_COOKIE_RUNS  # one more than nginx's lines remove

    httpx.get(f"{proxy.url}/page", headers={"Cookie": _runs(runs)})

    cookie = app_cookie(only(echo_app.requests))
    if proxy.kind == "nginx":
        assert cookie is None
    else:
        assert cookie == "; ".join(f"c{i}=v{i}" for i in range(runs))


# Every character an HTTP token may have that is syntax somewhere: regex, nginx, Caddyfile.
ODD_NAME = "a!#$%&'*+-.^_`|~z"


@pytest.mark.parametrize("kind", ["nginx", "caddy"])
def test_cookie_names_of_any_token_characters_are_removed_exactly(
    kind: str,
    live_nginx: LiveNginx,
    live_caddy: LiveCaddy,
    watchword: StandIn,
    echo_app: EchoApp,
) -> None:
    cookies = (ODD_NAME, "sid", "__Host-only")  # "only" itself is not named
    if kind == "nginx":
        proxy = start_nginx(live_nginx, watchword, echo_app, cookies=cookies)
    else:
        proxy = start_caddy(live_caddy, watchword, echo_app, cookies=cookies)
    # Each look-alike differs where a character would be read as syntax if not escaped.
    lookalikes = "a!#$%&'*+-xa^_`|~z=1; a!#$%&'*+-.^_`|z=2; az=3; sidx=4; only=5"

    httpx.get(
        f"{proxy.url}/page",
        headers={
            "Cookie": f"{ODD_NAME}=x; {lookalikes}; sid=y; __Host-only=z; watchword_session=s"
        },
    )

    assert app_cookie(only(echo_app.requests)) == f"{lookalikes}; watchword_session=s"


LUAJIT = shutil.which("luajit")


@pytest.fixture
def luajit() -> str:
    """LuaJIT, which runs the Envoy configuration's Lua here (Envoy is not packaged); like
    the proxies, a skip without it, a failure with CI=true (scripts/components installs it)."""
    if LUAJIT is None:
        _unavailable(
            "luajit is missing; scripts/components installs it (as root: apt-get install "
            "-y luajit)",
            FileNotFoundError("luajit"),
        )
    assert LUAJIT is not None
    return LUAJIT


def run_envoy_lua(tmp_path: Path, cookies: Sequence[str], sent: Sequence[str]) -> list[str]:
    """The Cookie headers Envoy's Lua filter leaves of the Cookie headers ``sent``."""
    assert LUAJIT is not None
    filters = yaml.safe_load(
        proxyconf.envoy_http_filter(watchword_cluster="watchword", cookies=cookies)
    )
    source = filters[2]["typed_config"]["default_source_code"]["inline_string"]
    left = _run_lua(tmp_path, source, [f"cookie:{value}" for value in sent])
    return [line.removeprefix("cookie:") for line in left]


@pytest.mark.usefixtures("luajit")
@pytest.mark.parametrize(("sent", "kept"), COOKIES.values(), ids=COOKIES.keys())
def test_envoys_lua_removes_watchwords_cookies_as_nginx_and_caddy_do(
    tmp_path: Path, sent: str | None, kept: str | None
) -> None:
    left = run_envoy_lua(tmp_path, DEFAULT_COOKIES, [] if sent is None else [sent])

    if kept is None:
        assert left == []
    elif kept == sent:
        assert left == [sent]  # untouched
    else:  # rebuilt: the pairs, trimmed, joined by "; "
        assert left == ["; ".join(pair.strip() for pair in kept.split(";"))]


@pytest.mark.usefixtures("luajit")
def test_envoys_lua_handles_several_cookie_headers_and_odd_names(tmp_path: Path) -> None:
    sent = [f"a=1; {SESSION}", "watchword_signin=b; b=2"]
    assert run_envoy_lua(tmp_path, DEFAULT_COOKIES, sent) == ["a=1; b=2"]
    assert run_envoy_lua(tmp_path, DEFAULT_COOKIES, [SESSION, "a=1"]) == ["a=1"]
    assert run_envoy_lua(tmp_path, DEFAULT_COOKIES, [SESSION, "watchword_signin=b"]) == []
    odd = f"{ODD_NAME}=x; a!#$%&'*+-xa^_`|~z=1; sid=2"
    assert run_envoy_lua(tmp_path, (ODD_NAME, "sid"), [odd]) == ["a!#$%&'*+-xa^_`|~z=1"]


# The same filter on Authorization headers: "name:value" arguments, "name:value" lines out.
LUA_HEADERS_HARNESS = """
local store = {}
for i = 2, #arg do
  local name, value = string.match(arg[i], "^([^:]+):(.*)$")
  store[name] = store[name] or {}
  table.insert(store[name], value)
end
local headers = {}
function headers:getNumValues(key) return #(store[key] or {}) end
function headers:getAtIndex(key, index) return (store[key] or {})[index + 1] end
function headers:remove(key) store[key] = nil end
function headers:add(key, value)
  store[key] = store[key] or {}
  table.insert(store[key], value)
end
local handle = {}
function handle:headers() return headers end
dofile(arg[1])
envoy_on_request(handle)
for _, name in ipairs({"authorization", "cookie"}) do
  for _, value in ipairs(store[name] or {}) do print(name .. ":" .. value) end
end
"""


def run_envoy_lua_headers(tmp_path: Path, sent: Sequence[str]) -> list[str]:
    """The ``name:value`` headers Envoy's Lua filter leaves of ``sent`` (Authorization and
    Cookie)."""
    return _run_lua(tmp_path, "\n".join(proxyconf.envoy_cookie_lua()) + "\n", sent)


def _run_lua(tmp_path: Path, source: str, sent: Sequence[str]) -> list[str]:
    """Run Envoy's Lua ``source`` on the ``name:value`` headers ``sent``, under LuaJIT with a
    stand-in for Envoy's headers object; the ``name:value`` headers it leaves."""
    assert LUAJIT is not None
    (tmp_path / "filter.lua").write_text(source)
    (tmp_path / "harness.lua").write_text(LUA_HEADERS_HARNESS)
    done = subprocess.run(
        [LUAJIT, str(tmp_path / "harness.lua"), str(tmp_path / "filter.lua"), *sent],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.splitlines()


@pytest.mark.usefixtures("luajit")
def test_envoys_lua_removes_watchwords_credentials_and_keeps_any_other_authorization(
    tmp_path: Path,
) -> None:
    for value in CREDENTIALS.values():
        assert run_envoy_lua_headers(tmp_path, [f"authorization:{value}"]) == [], value
    for value in NOT_CREDENTIALS.values():
        sent = [f"authorization:{value}"]
        assert run_envoy_lua_headers(tmp_path, sent) == sent, value
    # Several values: watchword's go, the others stay; cookies are handled as before.
    sent = [
        "authorization:Bearer app-1",
        f"authorization:{CREDENTIALS['personal']}",
        f"cookie:a=1; {SESSION}",
    ]
    assert run_envoy_lua_headers(tmp_path, sent) == ["authorization:Bearer app-1", "cookie:a=1"]


def test_the_cli_passes_watchwords_cookie_names_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("WATCHWORD_HOST", "WATCHWORD_PORT", "WATCHWORD_SESSIONS__COOKIE_NAME"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    args = ["--watchword", "http://127.0.0.1:8000"]

    default = runner.invoke(cli, ["edge", "config", "ingress-nginx", *args])
    monkeypatch.setenv("WATCHWORD_SESSIONS__COOKIE_NAME", "app_sid")
    custom = runner.invoke(cli, ["edge", "config", "ingress-nginx", *args])

    assert default.exit_code == 0, default.output
    # The defaults are the settings' names: the session cookie's and the binding cookie's.
    assert default.output == proxyconf.ingress_nginx_annotations(watchword="http://127.0.0.1:8000")
    assert custom.exit_code == 0, custom.output
    assert custom.output == proxyconf.ingress_nginx_annotations(
        watchword="http://127.0.0.1:8000",
        cookies=("app_sid", "__Host-app_sid", "watchword_signin", "__Host-watchword_signin"),
    )


def test_the_default_cookies_are_the_ones_watchword_sets() -> None:
    session = SessionSettings().cookie_name
    assert set(DEFAULT_COOKIES) == {
        session,
        f"__Host-{session}",
        BINDING_COOKIE,
        f"__Host-{BINDING_COOKIE}",
    }


# 9: watchword's forward-auth endpoints answer the proxy alone ------------------------------


def raw_request(port: int, head: str) -> tuple[int, dict[str, str]]:
    """Send ``head`` (request line and header lines, CRLF-separated) as it is, ending with
    ``Connection: close``: HTTP clients normalize paths and hosts. The answer's status and
    headers (lower-case names)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{head}\r\nConnection: close\r\n\r\n".encode())
        answer = sock.makefile("rb").read()
    top = answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    assert top[0].startswith("HTTP/1.1 "), answer[:200]
    headers = {}
    for line in top[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(top[0].split(" ")[1]), headers


def pass_through_leaks(ww: StandIn) -> list[Seen]:
    """The requests that reached watchword's forward-auth endpoints other than as the
    proxy's own auth call (which always describes the original request)."""
    return [
        seen
        for seen in ww.requests
        if routed_to_forward_auth(seen.path) and "x-forwarded-uri" not in seen.headers
    ]


# Every spelling of the forward-auth endpoints that nginx or watchword reads as them.
FORWARD_AUTH_SPELLINGS = [
    "/auth/verify",
    "/auth/verify/",
    "/auth/verify?x=1",
    "/auth/verify/x",
    "/auth//verify",
    "/auth/%76erify",
    "/auth/./verify",
    "/auth/%2e/verify",
    "/auth/x/../verify",
    "/auth/verify%0A",
    "/auth/envoy",
    "/auth/envoy/",
    "/auth/envoy/me",
    "/auth/envoy/orgs/acme?x=1",
    "/auth/%65nvoy/me",
    "/auth//envoy/me",
    "/auth/./envoy/me",
]
# Paths nginx reads as another page (its normalized path: watchword is sent that) that
# watchword, reading them as sent, would route to a forward-auth endpoint; Caddy: 404.
FORWARD_AUTH_AS_SENT = {
    "/auth/envoy/../login": "/auth/login",
    "/auth/envoy/%2e%2e/login": "/auth/login",
    "/auth/env%6fy/../login": "/auth/login",
    "/auth/envoy/%2e%2e/me": "/auth/me",
    "/auth/envoy/../../.well-known/watchword/jwks.json": "/.well-known/watchword/jwks.json",
}


@pytest.mark.parametrize("path", FORWARD_AUTH_SPELLINGS)
def test_the_forward_auth_endpoints_answer_404_through_the_proxy(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp, path: str
) -> None:
    # watchword believes the proxy's own address: through the pass-through, its answer
    # (identity headers, assertion, access token) would go to the client.
    watchword.verify = Answer(200, ALICE)

    status, headers = raw_request(
        proxy.port,
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n"
        "Authorization: Bearer wwp_user_token",
    )

    assert status == 404
    assert not IDENTITY & set(headers)
    assert pass_through_leaks(watchword) == []
    assert echo_app.requests == []


@pytest.mark.parametrize(("path", "normalized"), FORWARD_AUTH_AS_SENT.items())
def test_watchword_never_gets_a_path_it_would_route_to_its_forward_auth_endpoints(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp, path: str, normalized: str
) -> None:
    watchword.verify = Answer(200, ALICE)

    status, headers = raw_request(
        proxy.port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}"
    )

    assert not IDENTITY & set(headers)
    assert pass_through_leaks(watchword) == []
    if proxy.kind == "caddy":
        assert status == 404
    else:
        assert status == 200
        assert [seen.path for seen in watchword.requests] == [normalized]
    assert echo_app.requests == []


def test_the_auth_call_still_reaches_verify_and_the_signin_pages_still_pass(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp
) -> None:
    page = httpx.get(f"{proxy.url}/docs?a=1")
    login = httpx.get(f"{proxy.url}/auth/login?return_to=%2Fdocs%3Fa%3D1")
    start = httpx.get(f"{proxy.url}/auth/start?rd=%2F")

    assert (page.status_code, login.status_code) == (200, 200)
    assert start.status_code in {302, 401}
    verify = only(watchword.to("/auth/verify"))
    assert verify.headers["x-forwarded-uri"] == "/docs?a=1"
    assert only(watchword.to("/auth/login")).path == "/auth/login?return_to=%2Fdocs%3Fa%3D1"
    assert identity_seen(only(echo_app.requests)) == {k.lower(): v for k, v in ALICE.items()}


# 10: watchword's credentials are watchword's: the app gets any other Authorization ---------

BODY = "0123456789ABCDEFGHIJabcdefghij"
CREDENTIALS = {
    "personal": f"Bearer {compose(TokenKind.PERSONAL, BODY)}",
    "service-account": f"Bearer {compose(TokenKind.SERVICE_ACCOUNT, BODY)}",
    "integration": f"bearer {compose(TokenKind.INTEGRATION, BODY)}",
    "admin-key": f"BEARER  {KEY_PREFIX}{'k' * 40}",
    "tab": f"Bearer\t{compose(TokenKind.PERSONAL, BODY)}",
    "mixed-case-scheme": f"bEaReR {KEY_PREFIX}x",
}
NOT_CREDENTIALS = {
    "apps-bearer": "Bearer app-token-1",
    "basic": "Basic YWxpY2U6c2VjcmV0",
    "prefix-inside": "Bearer xwwp_abc",
    "no-underscore": "Bearer wwpabc",
    "other-scheme": "Token wwp_abc",
    "upper-case-prefix": "Bearer WWP_abc",
    "scheme-only": "Bearerwwp_abc",
}


def test_the_credential_pattern_is_every_credential_watchword_takes() -> None:
    for kind in TokenKind:
        assert re.match(proxyconf.CREDENTIAL_PATTERN, f"Bearer {compose(kind, BODY)}")
    for value in CREDENTIALS.values():
        assert re.match(proxyconf.CREDENTIAL_PATTERN, value), value
    for value in NOT_CREDENTIALS.values():
        assert not re.match(proxyconf.CREDENTIAL_PATTERN, value), value


@pytest.mark.parametrize("sent", CREDENTIALS.values(), ids=CREDENTIALS.keys())
def test_the_app_never_gets_watchwords_credentials(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp, sent: str
) -> None:
    response = httpx.post(f"{proxy.url}/api/items", headers={"Authorization": sent}, content="x")

    assert response.status_code == 200
    assert "authorization" not in only(echo_app.requests).headers
    # watchword is asked with it as the client sent it.
    assert only(watchword.to("/auth/verify")).headers["authorization"] == sent


@pytest.mark.parametrize("sent", NOT_CREDENTIALS.values(), ids=NOT_CREDENTIALS.keys())
def test_the_app_gets_any_other_authorization_unchanged(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp, sent: str
) -> None:
    response = httpx.get(f"{proxy.url}/api/items", headers={"Authorization": sent})

    assert response.status_code == 200
    assert only(echo_app.requests).headers["authorization"] == sent
    assert only(watchword.to("/auth/verify")).headers["authorization"] == sent


def test_the_signin_pages_get_watchwords_credentials(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp
) -> None:
    sent = CREDENTIALS["personal"]

    response = httpx.get(f"{proxy.url}/auth/login", headers={"Authorization": sent})

    assert response.status_code == 200
    assert only(watchword.to("/auth/login")).headers["authorization"] == sent
    assert echo_app.requests == []


# 11: what watchword refuses cross-site writes by reaches it --------------------------------


def test_the_auth_call_carries_origin_referer_sec_fetch_site_and_the_scheme(
    proxy: LiveProxy, watchword: StandIn, echo_app: EchoApp
) -> None:
    sent = {
        "Origin": "https://elsewhere.example",
        "Referer": "https://elsewhere.example/form",
        "Sec-Fetch-Site": "cross-site",
    }

    httpx.post(
        f"{proxy.url}/items",
        headers={**sent, "Cookie": "watchword_session=s1"},
        content="x",
    )

    verify = only(watchword.to("/auth/verify"))
    assert {name: verify.headers.get(name.lower()) for name in sent} == sent
    assert verify.headers["x-forwarded-proto"] == "http"
    assert verify.headers["cookie"] == "watchword_session=s1"


# 12: connections to watchword and to the app are kept alive --------------------------------


@pytest.mark.parametrize("kind", ["nginx", "caddy"])
def test_connections_to_watchword_and_to_the_app_are_kept_alive(
    kind: str, live_nginx: LiveNginx, live_caddy: LiveCaddy, watchword: StandIn
) -> None:
    with running_stand_in() as app:
        if kind == "nginx":
            proxy = start_nginx(live_nginx, watchword, app)
        else:
            proxy = start_caddy(live_caddy, watchword, app)
        for index in range(4):  # a new client connection each time
            assert httpx.get(f"{proxy.url}/page/{index}").status_code == 200
            assert httpx.get(f"{proxy.url}/auth/login").status_code == 200

        assert len(app.requests) == 4
        assert app.connections == 1
        # nginx: one upstream for watchword, shared by the auth subrequest and /auth/;
        # Caddy: a pool per reverse_proxy (forward_auth's and /auth/*'s).
        assert watchword.connections == (1 if kind == "nginx" else 2)
        assert len(watchword.requests) == 8
    for seen in [*watchword.requests, *app.requests]:
        assert seen.headers.get("connection", "").lower() != "close"


def test_several_nginx_blocks_get_upstreams_of_their_own(
    live_nginx: LiveNginx, watchword: StandIn, echo_app: EchoApp
) -> None:
    # Users paste a block per app: the upstream names must not collide (nginx refuses a
    # name given twice), and each block must reach its own app.
    with running_stand_in() as other_app:

        def blocks(listen: str) -> str:
            return "".join(
                proxyconf.nginx_server(
                    listen=listen, server_name=name, watchword=watchword.url, app=app_url
                )
                for name, app_url in (("app.test", echo_app.url), ("other.test", other_app.url))
            )

        proxy = live_nginx(blocks)
        httpx.get(f"{proxy.url}/a", headers={"Host": "app.test"})
        httpx.get(f"{proxy.url}/b", headers={"Host": "other.test"})

        assert [seen.path for seen in echo_app.requests] == ["/a"]
        assert [seen.path for seen in other_app.requests] == ["/b"]


# 13: nginx tells watchword, and the app, the host it chose the server block by ------------


def test_nginx_describes_the_host_it_routed_on_and_refuses_a_host_header_naming_another(
    live_nginx: LiveNginx, watchword: StandIn, echo_app: EchoApp
) -> None:
    # Two blocks, each with its own watchword: which one is asked shows which block nginx
    # chose. An absolute-form request line names a host; nginx routes on it, not on Host.
    with running_stand_in() as admin_ww:

        def blocks(listen: str) -> str:
            return "".join(
                proxyconf.nginx_server(
                    listen=listen, server_name=name, watchword=ww_url, app=echo_app.url
                )
                for name, ww_url in (("app.test", watchword.url), ("admin.test", admin_ww.url))
            )

        proxy = live_nginx(blocks)
        port = proxy.port

        # The request line names admin.test, the Host header app.test: refused, by either.
        for target in (f"http://admin.test:{port}/x", f"http://admin.test:{port}/auth/login"):
            status, _ = raw_request(port, f"GET {target} HTTP/1.1\r\nHost: app.test:{port}")
            assert status == 421
        # No Host header at all (HTTP/1.0): the same.
        status, _ = raw_request(port, "GET /x HTTP/1.0")
        assert status == 421
        assert watchword.requests == admin_ww.requests == echo_app.requests == []

        # The same host spelled otherwise (case, trailing dot): the host nginx routed on,
        # with the port the Host header gave.
        status, _ = raw_request(
            port, f"GET http://Admin.Test:{port}/x?y=1 HTTP/1.1\r\nHost: ADMIN.test.:{port}"
        )
        assert status == 200
        verify = only(admin_ww.to("/auth/verify"))
        host = f"admin.test:{port}"
        assert verify.headers["x-forwarded-host"] == host
        assert verify.headers["host"] == host
        assert verify.headers["x-original-url"] == f"http://{host}/x?y=1"
        assert only(echo_app.requests).headers["host"] == host
        status, _ = raw_request(port, f"GET /auth/login HTTP/1.1\r\nHost: Admin.Test:{port}")
        assert status == 200
        assert only(admin_ww.to("/auth/login")).headers["x-forwarded-host"] == host
        assert watchword.requests == []

        # A Host header without a port: none is made up.
        status, _ = raw_request(port, "GET /y HTTP/1.1\r\nHost: app.test")
        assert status == 200
        assert only(watchword.to("/auth/verify")).headers["x-forwarded-host"] == "app.test"


# 7: a fact about nginx, for later ----------------------------------------------------------


def test_nginx_auth_request_set_captures_the_headers_of_a_401_answer_too(
    live_nginx: LiveNginx, watchword: StandIn, echo_app: EchoApp
) -> None:
    # So a named location behind `error_page 401` can use what watchword's 401 carried.
    def server_block(listen: str) -> str:
        return f"""server {{
    listen {listen};
    location = /_verify {{
        internal;
        proxy_pass {watchword.url}/auth/verify;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }}
    location @denied {{
        add_header X-Captured $captured always;
        return 401;
    }}
    location / {{
        auth_request /_verify;
        auth_request_set $captured $upstream_http_x_watchword_subject;
        error_page 401 = @denied;
        proxy_pass {echo_app.url};
    }}
}}
"""

    proxy = live_nginx(server_block)
    watchword.verify = Answer(401, {"X-Watchword-Subject": "from-the-401"})

    response = httpx.get(f"{proxy.url}/")

    assert response.status_code == 401
    assert response.headers["x-captured"] == "from-the-401"


# The renderers' inputs ---------------------------------------------------------------------


def render_all(
    *,
    watchword: str = "http://127.0.0.1:9000",
    app: str = "http://127.0.0.1:8000",
    headers: Sequence[str] = DEFAULT_HEADERS,
    listen: str = "8080",
    server_name: str = "app.example.com",
    address: str = "app.example.com",
    rule: str = "Host(`app.example.com`)",
) -> list[str]:
    """What every renderer but Envoy's makes of these arguments."""
    return [
        proxyconf.nginx_server(
            listen=listen, server_name=server_name, watchword=watchword, app=app, headers=headers
        ),
        proxyconf.caddyfile_site(address=address, watchword=watchword, app=app, headers=headers),
        proxyconf.traefik_dynamic(watchword=watchword, app=app, rule=rule, headers=headers),
        proxyconf.ingress_nginx_annotations(watchword=watchword, headers=headers),
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000",
        "https://watchword.internal:443",
        "http://[::1]:9000",
        "http://watchword-0.watchword.ns.svc.cluster.local:9000/",
    ],
)
def test_upstream_urls_of_host_and_port_are_accepted(url: str) -> None:
    for output in render_all(watchword=url, app=url):
        assert url.rstrip("/") in output


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:9000",  # no scheme
        "ftp://127.0.0.1:9000",
        "http://127.0.0.1",  # no port
        "http://127.0.0.1:0",
        "http://127.0.0.1:70000",
        "http://127.0.0.1:9000/auth",  # a path
        "http://127.0.0.1:9000?x=1",
        "http://user@127.0.0.1:9000",
        "http://127.0.0.1:9000; include /etc/passwd",
        "http://127.0.0.1:9000\n",
        "http://exa mple:9000",
        "http://-bad-.example:9000",
        "http://[::g]:9000",
        "",
    ],
)
@pytest.mark.parametrize("argument", ["watchword", "app"])
def test_upstream_urls_other_than_host_and_port_are_refused(argument: str, url: str) -> None:
    with pytest.raises(ValueError, match=argument):
        render_all(**{argument: url})


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ((), "empty"),
        ("X-Watchword-Subject", "not one string"),
        (("X-Watchword-Subject", "x-watchword-subject"), "twice"),
        (("X_Watchword_Subject",), "letters, digits"),
        (("X-Bad Header",), "letters, digits"),
        (("X-A;",), "letters, digits"),
        (("-X-A",), "letters, digits"),
        (("",), "letters, digits"),
        (("Cookie",), "itself sets or passes"),
        (("authorization",), "itself sets or passes"),
        (("X-Original-URI",), "itself sets or passes"),
        (("Host",), "itself sets or passes"),
    ],
)
def test_header_names_that_could_break_the_configuration_are_refused(
    headers: Sequence[str], why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        render_all(headers=headers)
    with pytest.raises(ValueError, match=why):
        proxyconf.envoy_http_filter(watchword_cluster="watchword", headers=headers)


def _nginx_with(cookies: Sequence[str]) -> str:
    return proxyconf.nginx_server(
        listen="80",
        server_name="a.test",
        watchword="http://127.0.0.1:9000",
        app="http://127.0.0.1:8000",
        cookies=cookies,
    )


def _caddy_with(cookies: Sequence[str]) -> str:
    return proxyconf.caddyfile_site(
        address="a.test",
        watchword="http://127.0.0.1:9000",
        app="http://127.0.0.1:8000",
        cookies=cookies,
    )


def _envoy_with(cookies: Sequence[str]) -> str:
    return proxyconf.envoy_http_filter(watchword_cluster="watchword", cookies=cookies)


def _ingress_with(cookies: Sequence[str]) -> str:
    return proxyconf.ingress_nginx_annotations(watchword="http://127.0.0.1:9000", cookies=cookies)


# Every renderer that removes watchword's cookies (Traefik's cannot).
COOKIE_RENDERERS: dict[str, Callable[[Sequence[str]], str]] = {
    "nginx": _nginx_with,
    "caddy": _caddy_with,
    "envoy": _envoy_with,
    "ingress-nginx": _ingress_with,
}


def render_cookie_stripping(cookies: Sequence[str]) -> list[str]:
    """What every renderer that removes watchword's cookies makes of ``cookies``."""
    return [render(cookies) for render in COOKIE_RENDERERS.values()]


@pytest.mark.parametrize(
    ("cookies", "why"),
    [
        ((), "empty"),
        ("watchword_session", "not one string"),
        (("sid", "sid"), "twice"),
        (("",), "HTTP token"),
        (("a b",), "HTTP token"),
        (("a;b",), "HTTP token"),
        (("a=b",), "HTTP token"),
        (("a,b",), "HTTP token"),
        (('a"b',), "HTTP token"),
        (("a{b}",), "HTTP token"),
        (("a(b)",), "HTTP token"),
        (("a\\b",), "HTTP token"),
        (("a/b",), "HTTP token"),
        (("a\nb",), "HTTP token"),
        (("a\tb",), "HTTP token"),
        (("sid\x00",), "HTTP token"),
        (("sessión",), "HTTP token"),
        ((1,), "HTTP token"),
    ],
)
@pytest.mark.parametrize("renderer", COOKIE_RENDERERS.keys())
def test_cookie_names_that_are_not_tokens_are_refused(
    renderer: str, cookies: Sequence[str], why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        COOKIE_RENDERERS[renderer](cookies)


@pytest.mark.parametrize(
    "cookies",
    [("sid",), ("sid", "SID"), (ODD_NAME,), ("__Host-sid",), ("a.b", "__Host-a.b"), ("x" * 200,)],
)
def test_cookie_names_that_are_tokens_are_accepted(cookies: Sequence[str]) -> None:
    for output in render_cookie_stripping(cookies):
        assert "Cookie" in output or "cookie" in output


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3))
def test_no_accepted_cookie_name_can_carry_configuration_syntax(names: list[str]) -> None:
    try:
        render_cookie_stripping(names)
    except ValueError:
        return
    assert not set("".join(names)) & set(' \t\r\n;{}"\\(),/=@[]?:<>')


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("listen", "8080;"),
        ("listen", "0"),
        ("listen", "127.0.0.1:8080 ssl"),
        ("listen", "host:"),
        ("server_name", ""),
        ("server_name", "app.example.com;"),
        ("server_name", "a  b"),
        ("address", "app.example.com/path"),
        ("address", "app.example.com {"),
        ("address", ""),
        ("address", "ftp://app.example.com"),
        ("rule", ""),
        ("rule", "Host(`a`)\nhttp:"),
    ],
)
def test_listen_server_name_address_and_rule_are_checked(argument: str, value: str) -> None:
    with pytest.raises(ValueError, match=argument):
        render_all(**{argument: value})


@pytest.mark.parametrize("cluster", ["", "watch word", "ww\n", "a" * 200, "-ww"])
def test_envoy_cluster_names_are_checked(cluster: str) -> None:
    with pytest.raises(ValueError, match="watchword_cluster"):
        proxyconf.envoy_http_filter(watchword_cluster=cluster)


@given(st.text(max_size=40))
def test_no_accepted_url_can_carry_configuration_syntax(text: str) -> None:
    try:
        render_all(watchword=text)
    except ValueError:
        return
    assert not set(text) & set(" \t\r\n;{}\"'$`#\\|()&<>*?,")


def test_the_yaml_configurations_parse_to_what_they_promise() -> None:
    names = ("X-User", "X-Team")
    traefik = yaml.safe_load(
        proxyconf.traefik_dynamic(
            watchword="http://ww:9000", app="http://app:8000", rule="Host(`a.test`)", headers=names
        )
    )["http"]
    assert traefik["routers"]["watchword-app"]["middlewares"] == [
        "watchword-strip",
        "watchword-auth",
    ]
    assert traefik["routers"]["watchword-signin"]["service"] == "watchword"
    assert traefik["routers"]["watchword-signin"]["middlewares"] == ["watchword-strip"]
    not_forward_auth = "!PathPrefix(`/auth/verify`) && !PathPrefix(`/auth/envoy`)"
    assert traefik["routers"]["watchword-signin"]["rule"] == (
        "(Host(`a.test`)) && (PathPrefix(`/auth/`) || "
        f"Path(`/.well-known/watchword/jwks.json`)) && {not_forward_auth}"
    )
    assert traefik["routers"]["watchword-app"]["rule"] == f"(Host(`a.test`)) && {not_forward_auth}"
    auth = traefik["middlewares"]["watchword-auth"]["forwardAuth"]
    assert auth == {
        "address": "http://ww:9000/auth/verify",
        "trustForwardHeader": False,
        "authResponseHeaders": ["X-User", "X-Team"],
    }
    stripped = traefik["middlewares"]["watchword-strip"]["headers"]["customRequestHeaders"]
    assert {"X-User": "", "X-Team": "", "X-Original-URI": ""}.items() <= stripped.items()

    mutation, ext_authz, lua = yaml.safe_load(
        proxyconf.envoy_http_filter(watchword_cluster="watchword", headers=names)
    )
    assert mutation["typed_config"]["mutations"]["request_mutations"] == [
        {"remove": "x-user"},
        {"remove": "x-team"},
    ]
    service = ext_authz["typed_config"]["http_service"]
    assert service["path_prefix"] == "/auth/envoy"
    assert service["server_uri"]["cluster"] == "watchword"
    allowed = service["authorization_request"]["allowed_headers"]["patterns"]
    assert [pattern["exact"] for pattern in allowed] == [
        "cookie",
        "authorization",
        "accept",
        "x-forwarded-proto",
        "origin",
        "referer",
        "sec-fetch-site",
    ]
    upstream = service["authorization_response"]["allowed_upstream_headers"]["patterns"]
    assert [pattern["exact"] for pattern in upstream] == ["x-user", "x-team"]
    assert ext_authz["typed_config"]["failure_mode_allow"] is False
    assert lua["name"] == "envoy.filters.http.lua"
    code = lua["typed_config"]["default_source_code"]["inline_string"]
    assert code.splitlines() == proxyconf.envoy_cookie_lua(DEFAULT_COOKIES)

    annotations = yaml.safe_load(
        proxyconf.ingress_nginx_annotations(watchword="http://ww.ns.svc:9000", headers=names)
    )
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "auth-url"] == "http://ww.ns.svc:9000/auth/verify"
    assert annotations[prefix + "auth-response-headers"] == "X-User,X-Team"
    assert annotations[prefix + "auth-signin"] == "$pass_access_scheme://$http_host/auth/start"
    auth_snippet = annotations[prefix + "auth-snippet"]
    assert "proxy_set_header X-Forwarded-Host $watchword_host;" in auth_snippet
    # The server-level lines are nginx_server's, which the tests run in nginx: the host,
    # the cookie and authorization lines, the forward-auth endpoints' 404 locations.
    nginx = proxyconf.nginx_server(
        listen="80", server_name="a.test", watchword="http://ww:9000", app="http://app:8000"
    )
    server_snippet = annotations[prefix + "server-snippet"].splitlines()
    assert "\n".join(f"    {line}" if line else "" for line in server_snippet) in nginx
    assert 'set $watchword_host "";' in server_snippet
    assert "set $watchword_cookie $http_cookie;" in server_snippet
    assert "set $watchword_authorization $http_authorization;" in server_snippet
    assert "location ^~ /auth/verify {" in server_snippet
    assert "location ^~ /auth/envoy {" in server_snippet
    assert annotations[prefix + "configuration-snippet"] == (
        "proxy_set_header Cookie $watchword_cookie;\n"
        "proxy_set_header Authorization $watchword_authorization;\n"
    )
    assert "        proxy_set_header Cookie $watchword_cookie;\n" in nginx
    assert "        proxy_set_header Authorization $watchword_authorization;\n" in nginx


def _nginx_locations(block: str) -> dict[str, str]:
    """The ``location`` blocks of ``block``, by their heads, as text."""
    found: list[tuple[str, str]] = re.findall(
        r"\n    location ([^{\n]+) \{\n(.*?)\n    \}", block, re.S
    )
    return dict(found)


def test_nginx_keeps_connections_alive_in_every_location_that_proxies() -> None:
    block = proxyconf.nginx_server(
        listen="127.0.0.1:8080",
        server_name="app.example.com www.example.com",
        watchword="https://ww.internal:9443",
        app="http://127.0.0.1:3000",
    )
    prefix = "watchword_app_example_com_www_example_com_127_0_0_1_8080"
    # The upstream blocks come first, at the http level: not inside server { }.
    assert block.index(f"upstream {prefix}_watchword {{") < block.index("server {")
    assert block.index(f"upstream {prefix}_app {{") < block.index("server {")
    assert "    server ww.internal:9443;\n    keepalive 32;\n" in block
    assert "    server 127.0.0.1:3000;\n    keepalive 32;\n" in block
    locations = _nginx_locations(block)
    proxying = {head: body for head, body in locations.items() if "proxy_pass" in body}
    assert set(proxying) == {
        "/auth/",
        "= /.well-known/watchword/jwks.json",
        "= /_watchword/verify",
        "@watchword_signin",
        "/",
    }
    for head, body in proxying.items():
        assert "proxy_http_version 1.1;" in body, head
        assert 'proxy_set_header Connection "";' in body, head
    # TLS to watchword: SNI names the server, not the upstream.
    verify = proxying["= /_watchword/verify"]
    assert f"proxy_pass https://{prefix}_watchword/auth/verify;" in verify
    assert "proxy_ssl_name ww.internal;" in verify
    assert "proxy_ssl_name" not in proxying["/"]
    assert locations["^~ /auth/verify"].strip() == "return 404;"
    assert locations["^~ /auth/envoy"].strip() == "return 404;"


@pytest.mark.parametrize(
    ("server_name", "listen", "prefix"),
    [
        ("_", "80", "watchword_80"),
        ("app.example.com", "80", "watchword_app_example_com_80"),
        ("*.example.com", "[::1]:8080", "watchword_example_com_1_8080"),
    ],
)
def test_nginx_upstream_names_derive_from_server_name_and_listen(
    server_name: str, listen: str, prefix: str
) -> None:
    block = proxyconf.nginx_server(
        listen=listen,
        server_name=server_name,
        watchword="http://127.0.0.1:9000",
        app="http://127.0.0.1:8000",
    )
    assert f"upstream {prefix}_watchword {{" in block
    assert f"upstream {prefix}_app {{" in block


@pytest.mark.parametrize("prefix", ["", "1abc", "a-b", "a b", "a;", "a{", "a" * 65, "ä"])
def test_nginx_upstream_prefixes_are_checked(prefix: str) -> None:
    with pytest.raises(ValueError, match="upstream_prefix"):
        proxyconf.nginx_server(
            listen="80",
            server_name="_",
            watchword="http://127.0.0.1:9000",
            app="http://127.0.0.1:8000",
            upstream_prefix=prefix,
        )


def test_the_cli_passes_the_upstream_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WATCHWORD_HOST", "WATCHWORD_PORT"):
        monkeypatch.delenv(name, raising=False)
    args = ["edge", "config", "nginx", "--app", "http://127.0.0.1:3000"]

    printed = CliRunner().invoke(cli, [*args, "--upstream-prefix", "shop"])

    assert printed.exit_code == 0, printed.output
    assert "upstream shop_watchword {" in printed.output
    assert "proxy_pass http://shop_app;" in printed.output
