"""Reverse-proxy configurations that put watchword's forward auth in front of an app.

Users paste what these functions return; the tests run it verbatim in real nginx and Caddy.
Pure string rendering, no I/O. Every input is validated (``ValueError`` with a message that
names the argument), since the output becomes configuration: nothing a caller passes can
add a directive.

Every configuration guarantees, for the identity headers it is given (``DEFAULT_HEADERS``
unless told)::

    1. a header of one of those names sent by the client never reaches the app, nor watchword
       (nor, behind nginx and Caddy, one whose name has a '_', which CGI-style app servers
       would read as a '-');
    2. the values watchword's answer gives reach the app; an empty or missing value means
       the header is absent (nginx, Caddy), so "unknown" looks the same behind every proxy;
    3. a 401 or 403 from watchword reaches the client as 401 or 403 (nginx: a 401 goes
       through watchword's /auth/start, so a browser is redirected to sign in and an API
       client gets a problem+json 401); any other non-2xx answer (Caddy, Traefik: the 302
       to the sign-in page) reaches the client as it is;
    4. /auth/ (the sign-in pages) and the JWKS are proxied to watchword without auth, on
       the app's own origin, and never reach the app; watchword's forward-auth endpoints
       (``FORWARD_AUTH_PREFIXES``: /auth/verify, /auth/envoy/...) answer the proxy alone:
       a client asking for them, in any spelling the proxy or watchword would read as them
       (/auth/verify/, /auth//verify, /auth/%76erify, /auth/./verify, /auth/envoy/x/..),
       gets 404 (Envoy, ingress-nginx: with the routes their sections give);
    5. the auth call carries the client's Cookie and Authorization, never the request body,
       and the original request only as the proxy saw it: the client's own X-Original-*
       and X-Forwarded-Uri/-Method are replaced or removed, and the auth call's own path
       and query are fixed; it carries the client's other headers too (nginx, Caddy,
       Traefik; Envoy: Accept, Origin, Referer, Sec-Fetch-Site, X-Forwarded-Proto), which
       watchword needs to refuse cross-site writes carried by the session cookie;
    6. the app never receives watchword's cookies (``DEFAULT_COOKIES`` unless told: the
       session cookie and the sign-in binding cookie, each with and without ``__Host-``),
       and receives every other cookie unchanged; watchword's own locations (/auth/, the
       auth call) get the client's Cookie header as it is. Traefik cannot do this with its
       stock middlewares (see :func:`traefik_dynamic`);
    7. the app never receives watchword's own credentials: an Authorization header that is
       one (``CREDENTIAL_PATTERN``: ``Bearer`` and an API token ``wwp_``, ``wws_``,
       ``wwi_`` or an admin key ``wwb_``) is removed before the app, any other reaches it
       unchanged; watchword's locations get it as it is. Traefik cannot (as 6);
    8. behind nginx, watchword is told of, and the app gets as Host, the host nginx chose
       the server block by (``$host``), with the port the client's Host header gave; a
       request whose Host header names another host than its request line (or none) is
       refused (421).

Rules::

    watchword, app   http(s)://host:port, nothing after the port (a trailing / is dropped)
    header names     letters, digits and inner '-' (the subset of HTTP tokens that nginx's
                     $upstream_http_* variables can name); distinct ignoring case; none of
                     the headers the configurations themselves set (Host, Cookie, ...)
    cookie names     HTTP tokens (RFC 6265: letters, digits and !#$%&'*+-.^_`|~), distinct
    upstream_prefix  (nginx) letters, digits and '_', starting with a letter
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CREDENTIAL_PATTERN",
    "DEFAULT_COOKIES",
    "DEFAULT_HEADERS",
    "FORWARD_AUTH_PREFIXES",
    "caddyfile_site",
    "envoy_cookie_lua",
    "envoy_http_filter",
    "ingress_nginx_annotations",
    "nginx_server",
    "traefik_dynamic",
]

DEFAULT_HEADERS: Final[tuple[str, ...]] = (
    "X-Watchword-Subject",
    "X-Watchword-Issuer",
    "X-Watchword-Email",
    "X-Watchword-Groups",
    "X-Watchword-Organizations",
    "X-Watchword-Jwt-Assertion",
    "X-Forwarded-Access-Token",
)

# watchword's cookies, which the app never gets: the session cookie (the setting
# sessions.cookie_name) and the sign-in binding cookie, each as it is named in development
# and with the __Host- prefix it has everywhere else.
DEFAULT_COOKIES: Final[tuple[str, ...]] = (
    "watchword_session",
    "__Host-watchword_session",
    "watchword_signin",
    "__Host-watchword_signin",
)
HOST_PREFIX: Final = "__Host-"
# nginx has no replace-all: one `if` removes watchword's cookies at the start of the Cookie
# header, then each of NGINX_COOKIE_RUNS more the next run of them after another cookie.
NGINX_COOKIE_RUNS: Final = 4

# Rules -------------------------------------------------------------------------------------

# Where the proxies send what (watchword's side of the contract).
VERIFY_PATH: Final = "/auth/verify"
START_PATH: Final = "/auth/start"
SIGNIN_PREFIX: Final = "/auth/"
JWKS_PATH: Final = "/.well-known/watchword/jwks.json"
ENVOY_PREFIX: Final = "/auth/envoy"
# watchword's forward-auth endpoints: for the proxy alone, never through the public /auth/
# pass-through (they believe the proxy's own address, so a client asking through it would
# get its identity headers, a signed assertion, an upstream access token). Prefixes: the
# pass-through answers 404 for each and for anything longer.
FORWARD_AUTH_PREFIXES: Final = (VERIFY_PATH, ENVOY_PREFIX)

# watchword's own credentials as an Authorization header: "Bearer" (any case) and an API
# token (ww + its kind's letter + "_", watchword.tokens.format) or an admin key ("wwb_",
# watchword.bootstrap.KEY_PREFIX). The same expression in PCRE (nginx) and RE2 (Caddy).
CREDENTIAL_PATTERN: Final = r"^\s*[Bb][Ee][Aa][Rr][Ee][Rr]\s+ww[a-z]{0,4}_"
# The same in a Lua pattern (Envoy), which has no {m,n}.
CREDENTIAL_LUA_PATTERN: Final = "^%s*[Bb][Ee][Aa][Rr][Ee][Rr]%s+ww[a-z]?[a-z]?[a-z]?[a-z]?_"
# nginx keeps this many idle connections to watchword, and to the app, per worker.
NGINX_KEEPALIVE: Final = 32

# Headers through which the proxy describes the original request to watchword: only the
# proxy may set them, so each configuration sets or removes every one of them.
REQUEST_DESCRIPTION: Final = (
    "X-Original-URI",
    "X-Original-Method",
    "X-Original-URL",
    "X-Forwarded-Uri",
    "X-Forwarded-Method",
)

# Names an identity header may not take: the configurations set, pass or remove these for
# their own purposes (an identity header "Cookie" would delete the session cookie).
RESERVED_HEADERS: Final = frozenset(
    name.lower()
    for name in (
        "Host",
        "Cookie",
        "Authorization",
        "Proxy-Authorization",
        "Accept",
        "Content-Length",
        "Content-Type",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "TE",
        "Trailer",
        "Expect",
        "Forwarded",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "X-Forwarded-Proto",
        "X-Real-IP",
        "Location",
        "Set-Cookie",
        "WWW-Authenticate",
        *REQUEST_DESCRIPTION,
    )
)

_HEADER_NAME = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
_COOKIE_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")  # RFC 6265 cookie-name = token
# Of those characters, the ones a regular expression (PCRE, Go's RE2) reads as syntax.
_REGEX_SYNTAX = re.compile(r"[.^$|*+]")
_DNS_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_URL = re.compile(r"(?P<scheme>https?)://(?P<host>\[[^\]/]*\]|[^:/\[\]]*):(?P<port>[0-9]{1,5})/?")
_LISTEN = re.compile(r"(?:(?P<host>\[[^\]/]*\]|[^:/\[\]]+):)?(?P<port>[0-9]{1,5})")
_CADDY_ADDRESS = re.compile(
    r"(?:(?P<scheme>https?)://)?(?P<host>(?:\*\.)?[^:/\[\]]*|\[[^\]/]*\])(?::(?P<port>[0-9]{1,5}))?"
)
_SERVER_NAME = re.compile(r"(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|_")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
_UPSTREAM_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_CLUSTER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,126}[A-Za-z0-9])?")
MAX_RULE: Final = 4096


@dataclass(frozen=True, slots=True)
class _Upstream:
    scheme: str
    host: str  # brackets kept around an IPv6 address
    port: int

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def _port(text: str, what: str, value: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"{what} {value!r}: port {port} is not between 1 and 65535")
    return port


def _host(host: str, what: str, value: str) -> str:
    """``host`` if it is a DNS name, an IPv4 address or a bracketed IPv6 address."""
    if host.startswith("["):
        # No zone ("%eth0"): Python accepts any text there, nginx and Caddy do not.
        inner = host[1:-1]
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            inner = ""
        if not _IPV6_CHARS.fullmatch(inner):
            raise ValueError(f"{what} {value!r}: {host} is not an IPv6 address")
        return host
    if not _DNS_NAME.fullmatch(host):
        raise ValueError(f"{what} {value!r}: {host!r} is not a host name or IPv4 address")
    return host


def _upstream(value: str, what: str) -> _Upstream:
    """``value`` as ``http(s)://host:port``, or ``ValueError`` naming ``what``."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string like http://127.0.0.1:9000")
    match = _URL.fullmatch(value)
    if match is None:
        raise ValueError(
            f"{what} {value!r} is not http(s)://host:port (a port, and no path, query, "
            "user or fragment)"
        )
    host = _host(match["host"], what, value)
    return _Upstream(match["scheme"], host, _port(match["port"], what, value))


def _headers(headers: Sequence[str]) -> tuple[str, ...]:
    """The identity header names, checked."""
    if isinstance(headers, str):
        raise ValueError("headers must be a sequence of header names, not one string")
    names = tuple(headers)
    if not names:
        raise ValueError("headers is empty: give at least one identity header name")
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValueError(
                f"header name {name!r}: letters, digits and inner '-' only (nginx can "
                "capture no other)"
            )
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(
                f"header name {name!r} is one the proxy configuration itself sets or "
                "passes; choose another"
            )
        if name.lower() in seen:
            raise ValueError(f"header name {name!r} is given twice (names ignore case)")
        seen.add(name.lower())
    return names


def _cookies(cookies: Sequence[str]) -> tuple[str, ...]:
    """The names of the cookies the app must not get, checked."""
    if isinstance(cookies, str):
        raise ValueError("cookies must be a sequence of cookie names, not one string")
    names = tuple(cookies)
    if not names:
        raise ValueError("cookies is empty: give at least one cookie name (watchword's)")
    for name in names:
        if not isinstance(name, str) or not _COOKIE_NAME.fullmatch(name):
            raise ValueError(
                f"cookie name {name!r}: an HTTP token (letters, digits and !#$%&'*+-.^_`|~) only"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"cookies {list(names)!r}: a cookie name is given twice")
    return names


def _cookie_alternatives(names: Sequence[str]) -> str:
    """A regular expression (PCRE and RE2 alike) matching exactly one of ``names``, as
    cookie names are compared: case-sensitively. A name given with and without ``__Host-``
    is written once: ``(?:__Host-)?(?:watchword_session|watchword_signin)``."""

    def escaped(group: Sequence[str]) -> str:
        return "|".join(_REGEX_SYNTAX.sub(lambda m: "\\" + m[0], name) for name in group)

    given = set(names)
    paired = [name for name in names if HOST_PREFIX + name in given]
    rest = [
        name
        for name in names
        if name not in paired and name.removeprefix(HOST_PREFIX) not in paired
    ]
    parts = [f"(?:{HOST_PREFIX})?(?:{escaped(paired)})"] if paired else []
    parts += [escaped([name]) for name in rest]
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def _nginx_cookie_lines(names: Sequence[str]) -> list[str]:
    """``set`` and ``if`` lines (server level) that make ``$watchword_cookie`` the client's
    Cookie header without the cookies ``names``; empty when nothing is left."""
    alt = _cookie_alternatives(names)
    leading = rf"^(?:\s*{alt}\s*=[^;]*(?:;|$))+\s*(.*)$"
    later = rf"^(.*?)(?:;\s*{alt}\s*=[^;]*)+(.*)$"
    left = rf"(?:^|;)\s*{alt}\s*="
    out = [
        "set $watchword_cookie $http_cookie;",
        f'if ($watchword_cookie ~ "{leading}") {{',
        "    set $watchword_cookie $1;",
        "}",
    ]
    for _ in range(NGINX_COOKIE_RUNS):
        out += [
            f'if ($watchword_cookie ~ "{later}") {{',
            "    set $watchword_cookie $1$2;",
            "}",
        ]
    out += [
        "# Still one left (no browser sends so many): the app gets no Cookie header at all.",
        f'if ($watchword_cookie ~ "{left}") {{',
        '    set $watchword_cookie "";',
        "}",
    ]
    return out


def _snake(name: str) -> str:
    """``name`` as nginx spells it in variables: lower case, ``_`` for ``-``."""
    return name.lower().replace("-", "_")


def _quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar (JSON's string syntax is YAML's too)."""
    return json.dumps(text)


# nginx -------------------------------------------------------------------------------------


def _nginx_server_level(cookie_names: Sequence[str]) -> list[str]:
    """The server-level lines of :func:`nginx_server` (ingress-nginx's ``server-snippet``
    too): ``$watchword_host``, ``$watchword_cookie``, ``$watchword_authorization`` and the
    404 locations of watchword's forward-auth endpoints. Unindented; "" between parts."""
    out = [
        "# The host nginx chose this block by ($host: the request line's host, else Host's;",
        "# lower case, no port, no trailing dot) is the one watchword is told of and the app",
        "# gets, with the port the client's Host header gave. A Host header naming another",
        "# host than the request line (or none) is refused: never decide about one host and",
        "# serve another.",
        'set $watchword_host "";',
        'set $watchword_hosts "$host $http_host";',
        'if ($watchword_hosts ~* "^(\\S+) \\1\\.?(:[0-9]+)?$") {',
        "    set $watchword_host $host$2;",
        "}",
        'if ($watchword_host = "") {',
        "    return 421;",
        "}",
        "",
        "# watchword's cookies are for watchword: $watchword_cookie, the Cookie header the",
        "# app gets, is the client's without them (watchword's locations get it as it is).",
        *_nginx_cookie_lines(cookie_names),
        "",
        "# watchword's credentials (Bearer wwp_..., wwb_...) are for watchword too:",
        "# $watchword_authorization, the Authorization header the app gets, is the client's",
        "# unless it is one of them.",
        "set $watchword_authorization $http_authorization;",
        f'if ($watchword_authorization ~ "{CREDENTIAL_PATTERN}") {{',
        '    set $watchword_authorization "";',
        "}",
        "",
        "# watchword's forward-auth endpoints answer nginx's auth subrequest only: a client",
        "# gets 404, for any path nginx normalizes to one of them (^~: before any regex).",
    ]
    for prefix in FORWARD_AUTH_PREFIXES:
        out += [f"location ^~ {prefix} {{", "    return 404;", "}"]
    return out


def _nginx_upstream_prefix(upstream_prefix: str | None, listen: str, server_name: str) -> str:
    if upstream_prefix is None:
        slug = re.sub(r"[^a-z0-9]+", "_", f"{server_name} {listen}".lower()).strip("_")
        return f"watchword_{slug}"
    if not isinstance(upstream_prefix, str) or not _UPSTREAM_PREFIX.fullmatch(upstream_prefix):
        raise ValueError(
            f"upstream_prefix {upstream_prefix!r}: letters, digits and '_', starting with a "
            "letter (at most 64)"
        )
    return upstream_prefix


def nginx_server(
    *,
    listen: str,
    server_name: str,
    watchword: str,
    app: str,
    headers: Sequence[str] = DEFAULT_HEADERS,
    cookies: Sequence[str] = DEFAULT_COOKIES,
    upstream_prefix: str | None = None,
) -> str:
    """Two ``upstream`` blocks and one ``server { ... }`` block, all for the ``http { }``
    block of nginx (1.22 or later, built with ``ngx_http_auth_request_module``, as
    Debian's is): nginx takes ``upstream`` only there, not inside ``server``.

    ``listen`` is ``port`` or ``host:port`` (add TLS to the block yourself);
    ``server_name`` one or more names separated by spaces. Each location sets its own
    ``proxy_set_header`` lines, so none set at the ``http``/``server`` level apply there.

    The upstreams, ``<upstream_prefix>_watchword`` and ``<upstream_prefix>_app``, keep up to
    ``NGINX_KEEPALIVE`` idle connections per worker (``keepalive``; every location proxies
    over HTTP/1.1 with ``Connection: ""``), so neither the auth subrequest nor the app's
    request opens a new TCP connection. ``upstream_prefix`` is by default ``watchword_``
    and ``server_name`` and ``listen`` in letters, digits and ``_``: each block pasted for
    another app gets its own names, and nginx refuses to start on a name given twice (two
    blocks whose names collide: give one another ``upstream_prefix``).

    How it keeps the guarantees of this module: ``auth_request`` asks watchword's
    /auth/verify (a GET without the body, the original request in ``X-Original-URI``,
    ``-Method``, ``X-Forwarded-Host``, ``-Proto`` and the same in ``X-Forwarded-Uri``,
    ``-Method``; every other header of the client's as it is); ``auth_request_set``
    captures each identity header of a 2xx answer and ``proxy_set_header`` passes it to
    the app, which replaces whatever the client sent under that name, and drops the header
    when the value is empty. ``error_page 401`` sends a 401 to watchword's /auth/start (a
    GET, no body, the same description of the original request), whose answer (302 for a
    browser, problem+json 401 for an API client) the client gets; a 403 is nginx's own 403
    page; any other answer from /auth/verify is turned into a 500 by nginx, which is why
    watchword answers 401 rather than 302 under this convention. The client's
    ``X-Forwarded-For`` is not passed on: this block is the edge; behind another proxy, use
    ``$proxy_add_x_forwarded_for`` with ``set_real_ip_from``.

    The forward-auth endpoints (``FORWARD_AUTH_PREFIXES``) are ``location ^~`` blocks
    answering 404: nginx matches locations on the normalized path (percent-decoded, dot
    segments resolved, ``//`` merged), so every spelling of them lands there, and the
    /auth/ and JWKS locations pass watchword that normalized path (``proxy_pass`` with a
    URI) rather than the path as the client sent it, which watchword would route as sent
    (``/auth/envoy/../login`` is /auth/login to nginx, the Envoy endpoint to watchword).

    The host: nginx picks the server block by ``$host`` (the request line's host of an
    absolute-form request, else the Host header's, normalized), so watchword is told of
    ``$host`` and the port of the Host header (``X-Forwarded-Host``, ``Host``,
    ``X-Original-URL``), never the raw Host header, and a request whose Host header names
    another host (or none) is refused with 421 at the server level. The app gets the same
    Host.

    The app gets the client's Cookie header without the cookies ``cookies``, and its
    Authorization header unless it is one of watchword's credentials: at the server level
    (so no ``if`` changes a location's configuration), ``set`` and ``if`` with a regular
    expression make ``$watchword_cookie`` of ``$http_cookie`` (nginx joins several Cookie
    headers with ``; ``) and ``$watchword_authorization`` of ``$http_authorization`` (nginx
    refuses a request with two), and the app's location sends them (none when empty). A
    ``map`` would be global to the ``http`` block. nginx cannot replace every match, so one
    ``if`` removes those cookies at the start of the header and each of
    ``NGINX_COOKIE_RUNS`` more the next run of them after another cookie; a header with
    still more runs (no browser sends one) reaches the app as no Cookie header at all.
    Other cookies pass unchanged, separators included.
    """
    listen = _nginx_listen(listen)
    server_name = _nginx_server_name(server_name)
    ww = _upstream(watchword, "watchword")
    upstream_app = _upstream(app, "app")
    names = _headers(headers)
    cookie_names = _cookies(cookies)
    prefix = _nginx_upstream_prefix(upstream_prefix, listen, server_name)
    ww_name, app_name = f"{prefix}_watchword", f"{prefix}_app"
    ww_pass = f"{ww.scheme}://{ww_name}"

    def tls(upstream: _Upstream) -> list[str]:
        # The upstream's name is not the server's: SNI (and a verified certificate) needs
        # the server's own.
        if upstream.scheme != "https":
            return []
        return ["proxy_ssl_server_name on;", f"proxy_ssl_name {upstream.host};"]

    kept_alive = ["proxy_http_version 1.1;", 'proxy_set_header Connection "";']
    forwarded = [
        "proxy_set_header Host $watchword_host;",
        "proxy_set_header X-Forwarded-Host $watchword_host;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
    ]
    described = [
        "proxy_set_header X-Original-URI $request_uri;",
        "proxy_set_header X-Original-Method $request_method;",
        "proxy_set_header X-Original-URL $scheme://$watchword_host$request_uri;",
        "proxy_set_header X-Forwarded-Uri $request_uri;",
        "proxy_set_header X-Forwarded-Method $request_method;",
    ]
    undescribed = [f'proxy_set_header {name} "";' for name in REQUEST_DESCRIPTION]
    no_identity = [f'proxy_set_header {name} "";' for name in names]
    no_body = ["proxy_pass_request_body off;", 'proxy_set_header Content-Length "";']
    to_watchword = [*tls(ww), *kept_alive]
    captures = [
        f"auth_request_set $watchword_{_snake(n)} $upstream_http_{_snake(n)};" for n in names
    ]
    identity = [f"proxy_set_header {n} $watchword_{_snake(n)};" for n in names]

    def location(head: str, comment: list[str], lines: list[str]) -> list[str]:
        body = [f"        {line}" for line in lines]
        notes = [f"    # {line}" for line in comment]
        return ["", *notes, f"    location {head} {{", *body, "    }"]

    def upstream(name: str, what: str, target: _Upstream) -> list[str]:
        return [
            f"# {what}, {target.url}: up to {NGINX_KEEPALIVE} idle connections kept per worker.",
            f"upstream {name} {{",
            f"    server {target.host}:{target.port};",
            f"    keepalive {NGINX_KEEPALIVE};",
            "}",
            "",
        ]

    out = [
        "# watchword forward auth: generated by watchword.edge.proxyconf.nginx_server.",
        "# All of it goes in the http { } block (nginx takes upstream blocks only there).",
        "",
        *upstream(ww_name, "watchword", ww),
        *upstream(app_name, "The app", upstream_app),
        "server {",
        f"    listen {listen};",
        f"    server_name {server_name};",
        "",
    ]
    out += [f"    {line}" if line else "" for line in _nginx_server_level(cookie_names)]
    out += location(
        SIGNIN_PREFIX,
        [
            "Sign-in pages on the app's own origin: unprotected, never forwarded to the app;",
            "watchword gets the path nginx matched (normalized), not the client's spelling.",
        ],
        [
            f"proxy_pass {ww_pass}{SIGNIN_PREFIX};",
            *to_watchword,
            *forwarded,
            *undescribed,
            *no_identity,
        ],
    )
    out += location(
        f"= {JWKS_PATH}",
        ["watchword's public keys, for apps that verify X-Watchword-Jwt-Assertion."],
        [
            f"proxy_pass {ww_pass}{JWKS_PATH};",
            *to_watchword,
            *forwarded,
            *undescribed,
            *no_identity,
        ],
    )
    out += location(
        "= /_watchword/verify",
        ["The auth subrequest: the client's headers (Cookie, Authorization...), never the body."],
        [
            "internal;",
            f"proxy_pass {ww_pass}{VERIFY_PATH};",
            *to_watchword,
            *no_body,
            *forwarded,
            *described,
            *no_identity,
        ],
    )
    out += location(
        "@watchword_signin",
        ["A 401 from /auth/verify: watchword's /auth/start answers (302 or problem+json 401)."],
        [
            f"rewrite ^ {START_PATH}? break;",
            f"proxy_pass {ww_pass};",
            *to_watchword,
            "proxy_method GET;",
            *no_body,
            *forwarded,
            *described,
            *no_identity,
        ],
    )
    out += location(
        "/",
        ["The app: only with watchword's yes, with watchword's identity headers only."],
        [
            "auth_request /_watchword/verify;",
            *captures,
            "error_page 401 = @watchword_signin;",
            f"proxy_pass {upstream_app.scheme}://{app_name};",
            *tls(upstream_app),
            *kept_alive,
            *forwarded,
            "# Replaces any header of these names the client sent; an empty value drops it.",
            *identity,
            "proxy_set_header Cookie $watchword_cookie;",
            "proxy_set_header Authorization $watchword_authorization;",
        ],
    )
    out.append("}")
    return "\n".join(out) + "\n"


def _nginx_listen(listen: str) -> str:
    match = _LISTEN.fullmatch(listen) if isinstance(listen, str) else None
    if match is None:
        raise ValueError(f"listen {listen!r} is not port, host:port or [ipv6]:port")
    if match["host"] is not None:
        _host(match["host"], "listen", listen)
    _port(match["port"], "listen", listen)
    return listen


def _nginx_server_name(server_name: str) -> str:
    if not isinstance(server_name, str):
        raise ValueError("server_name must be a string")
    names = server_name.split(" ")
    if not server_name or not all(_SERVER_NAME.fullmatch(name) for name in names):
        raise ValueError(
            f"server_name {server_name!r}: host names (or *.suffix, or _) separated by "
            "single spaces"
        )
    return server_name


# Caddy -------------------------------------------------------------------------------------


def caddyfile_site(
    *,
    address: str,
    watchword: str,
    app: str,
    headers: Sequence[str] = DEFAULT_HEADERS,
    cookies: Sequence[str] = DEFAULT_COOKIES,
) -> str:
    """One Caddyfile site block for Caddy 2.6 or later: ``address`` is the site address
    (``app.example.com``, ``https://app.example.com``, ``http://127.0.0.1:8080``,
    ``:8080``).

    How it keeps the guarantees of this module: everything runs in one ``route``, so in
    the order written. First the client's headers of the identity names and of the
    request description are deleted, and those with a ``_`` in their name (nginx drops
    these by default; CGI-style app servers read ``X_Watchword_Subject`` as
    ``X-Watchword-Subject``): ``copy_headers`` alone does not do it (from Caddy 2.9
    to 2.11.1 a client's header survives when watchword's answer lacks the header or gives
    it empty: GHSA-7r4p-vjf4-gxv4). Then /auth/ and the JWKS go to watchword. Then
    ``forward_auth`` asks /auth/verify (a GET without the body and without the client's
    query, the original request in ``X-Forwarded-Method``, ``-Uri``, ``-Host``, ``-Proto``,
    which Caddy sets itself); a non-2xx answer, such as the 302 to the sign-in page, goes
    to the client as it is. On a 2xx answer ``copy_headers`` copies the identity headers,
    and each one whose value is empty, or is the literal ``{http.reverse_proxy.header.…}``
    that Caddy 2.6 to 2.8 set for a header the answer lacks, is deleted before the request
    goes to the app.

    Last, the cookies ``cookies`` are removed from the Cookie header the app gets (after
    ``forward_auth`` and the sign-in pages, which need them): ``request_header Cookie
    <regexp> $1`` replaces every match, each one of those cookies with the ``;`` before it
    or, at the start of the header, the ``;`` after it. The replacement ``$1`` names no
    group of the expression, so it stands for nothing (Go's regexp expands it to ""): a
    Caddyfile cannot give an empty replacement, Caddy 2.6 would take ``""`` as
    ``request_header Cookie <value>`` and set the header to the expression. A Cookie
    header left empty is deleted (a client sending several Cookie headers, against RFC
    6265, loses the others too when one of them is left empty). Then an Authorization
    header that is one of watchword's credentials (``CREDENTIAL_PATTERN``, by
    ``header_regexp``: when one of several values is, all go) is deleted.

    The forward-auth endpoints (``FORWARD_AUTH_PREFIXES``) answer 404 before the sign-in
    pages are proxied: Caddy's ``path`` matcher compares the decoded path cleaned of dot
    segments and ``//``, ignoring case, but ``reverse_proxy`` sends the path as the client
    did, which watchword routes decoded and uncleaned (``/auth/envoy/../login`` is
    /auth/login to the matcher, the Envoy endpoint to watchword); so a second matcher,
    ``vars_regexp`` on ``{http.request.uri.path}`` (decoded, as sent), catches those.
    """
    address = _caddy_address(address)
    ww = _upstream(watchword, "watchword")
    upstream_app = _upstream(app, "app")
    names = _headers(headers)
    alt = _cookie_alternatives(_cookies(cookies))
    strip = rf"^(?:\s*{alt}\s*=[^;]*(?:;|$))+\s*|;\s*{alt}\s*=[^;]*"
    out = [
        "# watchword forward auth: generated by watchword.edge.proxyconf.caddyfile_site.",
        f"{address} {{",
        "\troute {",
        "\t\t# The identity headers and the description of the original request are the",
        "\t\t# proxy's and watchword's alone: drop any the client sent, before anything else.",
    ]
    out += [f"\t\trequest_header -{name}" for name in (*names, *REQUEST_DESCRIPTION)]
    out += [
        "\t\t# As nginx does, drop every header whose name has a '_': app servers that read",
        "\t\t# headers CGI-style take X_Watchword_Subject for X-Watchword-Subject.",
        "\t\trequest_header -*_*",
        "",
        "\t\t# watchword's forward-auth endpoints answer forward_auth (below) only: a client gets",
        "\t\t# 404, for the path Caddy matches (decoded, cleaned of dot segments and //, any",
        "\t\t# case) and the path watchword routes (decoded, as sent: /auth/envoy/../x).",
        f"\t\t@watchword_forward_auth path {' '.join(p + '*' for p in FORWARD_AUTH_PREFIXES)}",
        "\t\trespond @watchword_forward_auth 404",
        "\t\t@watchword_forward_auth_as_sent vars_regexp {http.request.uri.path} "
        f"^(?:{'|'.join(FORWARD_AUTH_PREFIXES)})",
        "\t\trespond @watchword_forward_auth_as_sent 404",
        "",
        "\t\t# Sign-in pages on the app's own origin: unprotected, never forwarded to the app.",
        f"\t\treverse_proxy {SIGNIN_PREFIX}* {ww.url}",
        f"\t\treverse_proxy {JWKS_PATH} {ww.url}",
        "",
        "\t\t# Ask watchword; a non-2xx answer (302 to sign in, 401, 403) goes to the client.",
        f"\t\tforward_auth {ww.url} {{",
        f"\t\t\turi {VERIFY_PATH}?",
        f"\t\t\tcopy_headers {' '.join(names)}",
        "\t\t}",
        "",
        "\t\t# An empty value, or the placeholder Caddy 2.6 to 2.8 leave for a header the",
        "\t\t# answer lacks, is no identity: the app gets no header then.",
    ]
    for index, name in enumerate(names):
        out += [
            f"\t\t@watchword_unset_{index} header_regexp {name} "
            r"^$|^\{http\.reverse_proxy\.header\.",
            f"\t\trequest_header @watchword_unset_{index} -{name}",
        ]
    out += [
        "",
        "\t\t# watchword's cookies are for watchword: the app gets the others, unchanged.",
        "\t\t# ($1 names no group: it stands for nothing, which a Caddyfile cannot write.)",
        f"\t\trequest_header Cookie {strip} $1",
        "\t\t@watchword_no_cookie header_regexp Cookie ^$",
        "\t\trequest_header @watchword_no_cookie -Cookie",
        "",
        "\t\t# watchword's credentials (Bearer wwp_..., wwb_...) are for watchword too: an",
        "\t\t# Authorization header that is one is removed, any other reaches the app as it is.",
        f"\t\t@watchword_credential header_regexp Authorization {CREDENTIAL_PATTERN}",
        "\t\trequest_header @watchword_credential -Authorization",
        "",
        f"\t\treverse_proxy {upstream_app.url}",
        "\t}",
        "}",
    ]
    return "\n".join(out) + "\n"


def _caddy_address(address: str) -> str:
    match = _CADDY_ADDRESS.fullmatch(address) if isinstance(address, str) else None
    if match is None or not (match["host"] or match["port"]):
        raise ValueError(
            f"address {address!r} is not a Caddy site address like app.example.com, "
            "https://app.example.com:8443 or :8080 (no path)"
        )
    host = match["host"]
    if host:
        bare = host[2:] if host.startswith("*.") else host
        _host(bare, "address", address)
    if match["port"] is not None:
        _port(match["port"], "address", address)
    return address


# Traefik -----------------------------------------------------------------------------------


def traefik_dynamic(
    *,
    watchword: str,
    app: str,
    rule: str,
    headers: Sequence[str] = DEFAULT_HEADERS,
) -> str:
    """A Traefik (v2 or v3) dynamic configuration for the file provider, in YAML: routers
    ``watchword-signin`` and ``watchword-app`` for ``rule`` (such as
    ``Host(`app.example.com`)``), services ``watchword`` and ``watchword-app``, middlewares
    ``watchword-strip`` and ``watchword-auth``.

    How it keeps the guarantees of this module: the sign-in router (``rule`` and /auth/ or
    the JWKS path) wins over the app router by Traefik's default priority, its rule being
    longer; it removes the client's identity and request-description headers too
    (``watchword-strip``). Both routers exclude the forward-auth endpoints
    (``FORWARD_AUTH_PREFIXES``, ``!PathPrefix``), so no router of this configuration takes
    them and Traefik answers 404 itself. Traefik matches the path it normalized (unreserved
    percent-escapes decoded, dot segments and ``//`` removed: ``sanitizePath``, on by
    default) and forwards that same path, so ``/auth/%76erify`` and ``/auth/./verify`` are
    excluded too. The app router's chain first removes the client's identity and
    request-description headers (``customRequestHeaders`` set to ``""``), then
    ``forwardAuth`` asks /auth/verify with ``trustForwardHeader: false`` (Traefik sets
    ``X-Forwarded-*`` itself; every other header of the client's goes as it is) and copies
    ``authResponseHeaders`` from a 2xx answer; any other answer goes to the client as it
    is. Not run by the tests (no Traefik here).

    What it cannot do: remove watchword's cookies from the Cookie header the app gets
    (guarantee 6), so it takes no ``cookies``, nor watchword's credentials from its
    Authorization header (guarantee 7). Traefik's stock middlewares set or delete whole
    headers (``headers``), and none edits a header's value or acts on what it holds; a
    plugin could, but is not stock. An app without cookies (or Authorization) of its own
    can have the whole header deleted by a ``headers`` middleware setting ``Cookie: ""``
    (``Authorization: ""``) after ``watchword-auth`` in the chain (before it, watchword
    would not get the credential).
    """
    ww = _upstream(watchword, "watchword")
    upstream_app = _upstream(app, "app")
    names = _headers(headers)
    if not isinstance(rule, str) or not rule.strip() or len(rule) > MAX_RULE:
        raise ValueError(f"rule must be a non-empty Traefik rule of at most {MAX_RULE} chars")
    if any(not ch.isprintable() for ch in rule):
        raise ValueError(f"rule {rule!r} has a control character")
    not_forward_auth = " && ".join(f"!PathPrefix(`{p}`)" for p in FORWARD_AUTH_PREFIXES)
    signin_rule = (
        f"({rule}) && (PathPrefix(`{SIGNIN_PREFIX}`) || Path(`{JWKS_PATH}`)) && {not_forward_auth}"
    )
    app_rule = f"({rule}) && {not_forward_auth}"
    out = [
        "# watchword forward auth: generated by watchword.edge.proxyconf.traefik_dynamic.",
        "http:",
        "  routers:",
        "    watchword-signin:",
        f"      rule: {_quoted(signin_rule)}",
        "      middlewares:",
        "        - watchword-strip",
        "      service: watchword",
        "    watchword-app:",
        f"      rule: {_quoted(app_rule)}",
        "      middlewares:",
        "        - watchword-strip",
        "        - watchword-auth",
        "      service: watchword-app",
        "  middlewares:",
        "    watchword-strip:",
        "      headers:",
        "        customRequestHeaders:",
    ]
    out += [f'          {name}: ""' for name in (*names, *REQUEST_DESCRIPTION)]
    out += [
        "    watchword-auth:",
        "      forwardAuth:",
        f"        address: {_quoted(ww.url + VERIFY_PATH)}",
        "        trustForwardHeader: false",
        "        authResponseHeaders:",
    ]
    out += [f"          - {name}" for name in names]
    out += [
        "  services:",
        "    watchword:",
        "      loadBalancer:",
        "        passHostHeader: true",
        "        servers:",
        f"          - url: {_quoted(ww.url)}",
        "    watchword-app:",
        "      loadBalancer:",
        "        passHostHeader: true",
        "        servers:",
        f"          - url: {_quoted(upstream_app.url)}",
    ]
    return "\n".join(out) + "\n"


# Envoy -------------------------------------------------------------------------------------


# The client's headers Envoy's ext_authz passes to watchword (``allowed_headers``): the
# credentials, what the answer's form depends on, the scheme (return_to URLs) and what
# watchword refuses cross-site writes by (Origin, Referer, Sec-Fetch-Site).
ENVOY_AUTH_HEADERS: Final = (
    "cookie",
    "authorization",
    "accept",
    "x-forwarded-proto",
    "origin",
    "referer",
    "sec-fetch-site",
)


def envoy_http_filter(
    *,
    watchword_cluster: str,
    headers: Sequence[str] = DEFAULT_HEADERS,
    cookies: Sequence[str] = DEFAULT_COOKIES,
) -> str:
    """Three entries of an Envoy (1.27 or later) ``http_connection_manager``'s
    ``http_filters`` list, in YAML, to put before ``envoy.filters.http.router``:
    ``header_mutation``, which removes the client's identity headers, then ``ext_authz``
    asking watchword (the cluster ``watchword_cluster``, which you define) at
    ``/auth/envoy`` + the original path, then ``lua``, which removes the cookies
    ``cookies`` from the Cookie header that goes on to the app, and the Authorization
    header when it is one of watchword's credentials.

    How it keeps the guarantees of this module: ext_authz's ``allowed_upstream_headers``
    sets a header only when the answer carries it, so the client's copy is removed first.
    The auth call carries the original method, host and path, and of the client's headers
    only ``ENVOY_AUTH_HEADERS`` (``allowed_headers``: Cookie, Authorization, Accept,
    X-Forwarded-Proto, Origin, Referer, Sec-Fetch-Site), never the body. A non-2xx answer
    reaches the client with its status and headers (``Location`` included).

    The cookies: no stock filter but Lua can edit a header's value (``header_mutation``
    sets, appends or removes whole headers). The Lua filter runs after ``ext_authz``, so
    watchword is asked with the client's Cookie header as it is; it splits every Cookie
    header at ``;`` and, when one of the pairs is named by ``cookies`` (the name compared
    as it is, surrounding white space aside), sends the other pairs as one Cookie header,
    joined by ``; `` (none when none is left); otherwise it changes nothing. It removes
    every Authorization value that is one of watchword's credentials
    (``CREDENTIAL_LUA_PATTERN``) and keeps the others.

    The routes are yours (docs/edge.md has them): /auth/ and the JWKS path go to watchword
    with ``ext_authz`` and ``lua`` disabled (``typed_per_filter_config``), and
    ``FORWARD_AUTH_PREFIXES`` (/auth/verify, /auth/envoy) answer 404 from routes placed
    before that one, with ``normalize_path``, ``merge_slashes`` and
    ``path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT`` on the connection manager,
    so Envoy matches, and forwards, the path watchword will route. Not run by the tests
    (no Envoy here); the Lua is run by them with a stand-in for Envoy's headers object when
    ``luajit`` is installed.
    """
    if not isinstance(watchword_cluster, str) or not _CLUSTER.fullmatch(watchword_cluster):
        raise ValueError(
            f"watchword_cluster {watchword_cluster!r} is not a cluster name (letters, "
            "digits, '_', '.', '-')"
        )
    names = _headers(headers)
    cookie_names = _cookies(cookies)
    out = [
        "# watchword forward auth: generated by watchword.edge.proxyconf.envoy_http_filter.",
        "- name: envoy.filters.http.header_mutation",
        "  typed_config:",
        '    "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3'
        ".HeaderMutation",
        "    mutations:",
        "      request_mutations:",
    ]
    out += [f"        - remove: {name.lower()}" for name in names]
    out += [
        "- name: envoy.filters.http.ext_authz",
        "  typed_config:",
        '    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
        "    failure_mode_allow: false",
        "    http_service:",
        "      server_uri:",
        f"        uri: {_quoted('http://' + watchword_cluster)}",
        f"        cluster: {_quoted(watchword_cluster)}",
        "        timeout: 5s",
        f"      path_prefix: {ENVOY_PREFIX}",
        "      authorization_request:",
        "        allowed_headers:",
        "          patterns:",
    ]
    out += [f"            - exact: {name}" for name in ENVOY_AUTH_HEADERS]
    out += [
        "      authorization_response:",
        "        allowed_upstream_headers:",
        "          patterns:",
    ]
    for name in names:
        out += [f"            - exact: {name.lower()}", "              ignore_case: true"]
    out += [
        "- name: envoy.filters.http.lua",
        "  typed_config:",
        '    "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua',
        "    default_source_code:",
        "      inline_string: |",
    ]
    out += [f"        {line}" if line else "" for line in envoy_cookie_lua(cookie_names)]
    return "\n".join(out) + "\n"


def envoy_cookie_lua(cookies: Sequence[str] = DEFAULT_COOKIES) -> list[str]:
    """The Lua of :func:`envoy_http_filter`'s last filter, as lines: ``envoy_on_request``
    removes the cookies ``cookies`` from the request's Cookie headers and watchword's
    credentials from its Authorization headers."""
    # Cookie names are tokens: no '"' or '\\' that could end or escape a Lua string.
    return [
        "-- watchword's cookies are for watchword: the app gets the others, unchanged.",
        "local watchword_cookies = {",
        *(f'  ["{name}"] = true,' for name in _cookies(cookies)),
        "}",
        "-- watchword's credentials (Bearer wwp_..., wwb_...) are for watchword too.",
        f'local watchword_credential = "{CREDENTIAL_LUA_PATTERN}"',
        "",
        "function envoy_on_request(request_handle)",
        "  local headers = request_handle:headers()",
        "  local kept, removed = {}, false",
        '  for index = 0, headers:getNumValues("cookie") - 1 do',
        '    for pair in string.gmatch(headers:getAtIndex("cookie", index), "[^;]+") do',
        '      if watchword_cookies[string.match(pair, "^%s*(.-)%s*=")] then',
        "        removed = true",
        "      else",
        '        local item = string.match(pair, "^%s*(.-)%s*$")',
        '        if item ~= "" then',
        "          kept[#kept + 1] = item",
        "        end",
        "      end",
        "    end",
        "  end",
        "  if removed then",
        '    headers:remove("cookie")',
        "    if #kept > 0 then",
        '      headers:add("cookie", table.concat(kept, "; "))',
        "    end",
        "  end",
        "  local others, credential = {}, false",
        '  for index = 0, headers:getNumValues("authorization") - 1 do',
        '    local value = headers:getAtIndex("authorization", index)',
        "    if string.find(value, watchword_credential) then",
        "      credential = true",
        "    else",
        "      others[#others + 1] = value",
        "    end",
        "  end",
        "  if credential then",
        '    headers:remove("authorization")',
        "    for _, value in ipairs(others) do",
        '      headers:add("authorization", value)',
        "    end",
        "  end",
        "end",
    ]


# ingress-nginx -----------------------------------------------------------------------------


def ingress_nginx_annotations(
    *,
    watchword: str,
    headers: Sequence[str] = DEFAULT_HEADERS,
    cookies: Sequence[str] = DEFAULT_COOKIES,
) -> str:
    """The ``metadata.annotations`` of a Kubernetes Ingress served by ingress-nginx, in
    YAML (the mapping's entries, to indent under ``annotations:``). ``watchword`` is how
    ingress-nginx reaches watchword (``http://watchword.ns.svc.cluster.local:9000``).

    Route /auth/ and the JWKS path of the same host to watchword with a second Ingress
    without these annotations: the sign-in pages must be on the app's own origin. That
    Ingress must not take watchword's forward-auth endpoints (``FORWARD_AUTH_PREFIXES``):
    the ``server-snippet`` answers them 404 (``location ^~``, which wins over the second
    Ingress's /auth/ location); where snippets may not hold ``location``, give the second
    Ingress the sign-in pages one by one instead (docs/edge.md has both).

    How it keeps the guarantees of this module: ``auth-response-headers`` becomes, per
    header, ``auth_request_set`` and ``proxy_set_header``, as in :func:`nginx_server`, so
    the client's copies never pass. ``auth-method: GET`` makes ingress-nginx send
    ``X-Original-URI``; the ``auth-snippet`` sets ``X-Forwarded-Host`` (the host nginx
    chose the server by, ``$watchword_host`` of the ``server-snippet``), ``-Proto``,
    ``-Uri``, ``-Method`` (ingress-nginx would pass the client's own ``X-Forwarded-Host``),
    so the annotation ``auth-snippet`` must be allowed (``allow-snippet-annotations``):
    where it is not, ingress-nginx refuses the Ingress rather than run without it. On a
    401, ingress-nginx redirects every client (API clients too) to
    ``/auth/start?rd=<the original URL>`` on the app's host: watchword's /auth/start reads
    ``rd`` there.

    The ``server-snippet`` is the server-level part of :func:`nginx_server`, tested there:
    ``$watchword_host`` (and the 421 for a Host header naming another host),
    ``$watchword_cookie`` (the Cookie header without the cookies ``cookies``),
    ``$watchword_authorization`` (the Authorization header unless it is one of watchword's
    credentials) and the 404 locations; the ``configuration-snippet`` sends the cookie and
    authorization to the app. ingress-nginx takes one ``server-snippet`` per host: merge it
    with any other Ingress's of the host.
    """
    ww = _upstream(watchword, "watchword")
    names = _headers(headers)
    server_lines = _nginx_server_level(_cookies(cookies))
    prefix = "nginx.ingress.kubernetes.io/"
    snippet = [
        "proxy_set_header X-Forwarded-Host $watchword_host;",
        "proxy_set_header X-Forwarded-Proto $pass_access_scheme;",
        "proxy_set_header X-Forwarded-Uri $request_uri;",
        "proxy_set_header X-Forwarded-Method $request_method;",
    ] + [f'proxy_set_header {name} "";' for name in names]
    out = [
        "# watchword forward auth: generated by watchword.edge.proxyconf."
        "ingress_nginx_annotations.",
        "# /auth/ and the JWKS path go to watchword through a second Ingress for the host;",
        "# never /auth/verify or /auth/envoy (server-snippet: 404), docs/edge.md.",
        f"{prefix}auth-url: {_quoted(ww.url + VERIFY_PATH)}",
        f"{prefix}auth-method: {_quoted('GET')}",
        f"{prefix}auth-signin: {_quoted('$pass_access_scheme://$http_host' + START_PATH)}",
        f"{prefix}auth-response-headers: {_quoted(','.join(names))}",
        f"{prefix}auth-snippet: |",
    ]
    out += [f"  {line}" for line in snippet]
    out += [f"{prefix}server-snippet: |", *(f"  {line}" if line else "" for line in server_lines)]
    out += [
        f"{prefix}configuration-snippet: |",
        "  proxy_set_header Cookie $watchword_cookie;",
        "  proxy_set_header Authorization $watchword_authorization;",
    ]
    return "\n".join(out) + "\n"
