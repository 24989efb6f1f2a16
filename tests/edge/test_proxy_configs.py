"""The proxy configurations of ``watchword.edge.proxyconf``, run verbatim in real nginx and
Caddy in front of an echo app, with a stand-in for watchword whose answers each test sets.

The stand-in follows watchword's side of the contract: ``/auth/verify`` answers what the
test says; ``/auth/start`` (nginx's sign-in redirect) answers a browser with a 302 to
``/auth/login?rd=<X-Original-URI>`` and any other client with a problem+json 401; every
other path answers 200 with JSON of what it received (the sign-in pages). It records every
request, as the echo app does, so a test sees exactly what reached each side.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import httpx
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from tests.support.echo_app import EchoApp, Seen, seen_request
from tests.support.live import free_port
from tests.support.proxies import LiveCaddy, LiveNginx, LiveProxy

from watchword.edge import proxyconf
from watchword.edge.proxyconf import DEFAULT_HEADERS

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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def to(self, path: str) -> list[Seen]:
        """The requests it got for ``path`` (query ignored)."""
        return [seen for seen in self.requests if seen.path.split("?")[0] == path]

    def answer(self, seen: Seen) -> Answer:
        path = seen.path.split("?")[0]
        if path == "/auth/verify":
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


@pytest.fixture
def watchword() -> Iterator[StandIn]:
    stand_in = StandIn(port=free_port())
    server = _StandInServer(stand_in)
    threading.Thread(target=server.serve_forever, name="stand-in", daemon=True).start()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()


# The proxies -------------------------------------------------------------------------------


def start_nginx(
    live_nginx: LiveNginx, ww: StandIn, app: EchoApp, headers: tuple[str, ...] = DEFAULT_HEADERS
) -> LiveProxy:
    return live_nginx(
        lambda listen: proxyconf.nginx_server(
            listen=listen, server_name="app.test", watchword=ww.url, app=app.url, headers=headers
        )
    )


def start_caddy(
    live_caddy: LiveCaddy, ww: StandIn, app: EchoApp, headers: tuple[str, ...] = DEFAULT_HEADERS
) -> LiveProxy:
    return live_caddy(
        lambda address: proxyconf.caddyfile_site(
            address=address, watchword=ww.url, app=app.url, headers=headers
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
    assert "PathPrefix(`/auth/`)" in traefik["routers"]["watchword-signin"]["rule"]
    auth = traefik["middlewares"]["watchword-auth"]["forwardAuth"]
    assert auth == {
        "address": "http://ww:9000/auth/verify",
        "trustForwardHeader": False,
        "authResponseHeaders": ["X-User", "X-Team"],
    }
    stripped = traefik["middlewares"]["watchword-strip"]["headers"]["customRequestHeaders"]
    assert {"X-User": "", "X-Team": "", "X-Original-URI": ""}.items() <= stripped.items()

    mutation, ext_authz = yaml.safe_load(
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
    assert {"exact": "cookie"} in allowed and {"exact": "authorization"} in allowed
    upstream = service["authorization_response"]["allowed_upstream_headers"]["patterns"]
    assert [pattern["exact"] for pattern in upstream] == ["x-user", "x-team"]
    assert ext_authz["typed_config"]["failure_mode_allow"] is False

    annotations = yaml.safe_load(
        proxyconf.ingress_nginx_annotations(watchword="http://ww.ns.svc:9000", headers=names)
    )
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "auth-url"] == "http://ww.ns.svc:9000/auth/verify"
    assert annotations[prefix + "auth-response-headers"] == "X-User,X-Team"
    assert annotations[prefix + "auth-signin"] == "$pass_access_scheme://$http_host/auth/start"
    assert "proxy_set_header X-Forwarded-Host $http_host;" in annotations[prefix + "auth-snippet"]
