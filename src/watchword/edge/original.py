"""The request a proxy asks about, read from the conventions of each proxy.

- nginx ``auth_request``: ``X-Original-URI`` (and ``X-Original-Method``), with
  ``X-Forwarded-Host``/``-Proto`` or the ``Host`` header;
- Caddy ``forward_auth`` and Traefik ``forwardAuth``: ``X-Forwarded-Method``, ``-Proto``,
  ``-Host``, ``-Uri``;
- Envoy ``ext_authz`` (HTTP service): the original path after the service's path prefix,
  the original ``Host`` and method.

These headers are believed only from ``edge.trusted_proxies``: a request from anywhere else
that carries them is refused (:class:`UntrustedProxy`), never answered about a request it
made up. Pure: the caller says whether the peer is trusted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from watchword.edge.routes import normal_host
from watchword.errors import NoOriginalRequest, UntrustedProxy

__all__ = ["NoOriginalRequest", "OriginalRequest", "UntrustedProxy", "original_request"]

_CONVENTION_HEADERS = (
    "x-original-uri",
    "x-original-method",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-forwarded-host",
)
MAX_URI = 8192
_PRINTABLE = re.compile(r"[\x21-\x7e]*")


@dataclass(frozen=True, slots=True)
class OriginalRequest:
    method: str
    scheme: str
    host: str
    uri: str  # path and query, as the client sent them
    convention: str  # nginx | forwarded | envoy

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}{self.uri}"


def _clean(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > MAX_URI or not _PRINTABLE.fullmatch(value):
        raise NoOriginalRequest(f"the {what} the proxy sent is not a printable request target")
    return value or None


def original_request(
    headers: Mapping[str, str],
    *,
    method: str,
    trusted: bool,
    envoy_uri: str | None = None,
) -> OriginalRequest:
    """The original request of a forward-auth call (``headers`` with lower-case names;
    ``method`` the call's own; ``envoy_uri`` the path and query after Envoy's prefix)."""
    if not trusted:
        if envoy_uri is not None or any(h in headers for h in _CONVENTION_HEADERS):
            raise UntrustedProxy(
                "forward-auth headers are believed only from edge.trusted_proxies; this "
                "request came from elsewhere"
            )
        raise NoOriginalRequest("forward-auth answers proxies in edge.trusted_proxies only")
    scheme = (_clean(headers.get("x-forwarded-proto"), "scheme") or "http").lower()
    if scheme not in {"http", "https"}:
        raise NoOriginalRequest("X-Forwarded-Proto must be http or https")
    host = _clean(headers.get("x-forwarded-host"), "host") or _clean(headers.get("host"), "host")
    if host is None:
        raise NoOriginalRequest("the proxy sent no host (X-Forwarded-Host or Host)")
    host = normal_host(host.split(",")[0])
    nginx_uri, forwarded_uri = headers.get("x-original-uri"), headers.get("x-forwarded-uri")
    if nginx_uri is not None and forwarded_uri is not None and nginx_uri != forwarded_uri:
        # Both conventions, naming different requests: one of them came from the client
        # through a proxy that passes it on. Never guess which.
        raise NoOriginalRequest("X-Original-URI and X-Forwarded-Uri name different requests")
    if envoy_uri is not None:
        uri, convention, given_method = envoy_uri, "envoy", None
    elif "x-original-uri" in headers:
        uri = _clean(headers["x-original-uri"], "X-Original-URI") or ""
        convention, given_method = "nginx", headers.get("x-original-method")
    elif "x-forwarded-uri" in headers:
        uri = _clean(headers["x-forwarded-uri"], "X-Forwarded-Uri") or ""
        convention, given_method = "forwarded", headers.get("x-forwarded-method")
    else:
        raise NoOriginalRequest(
            "the proxy named no original request: X-Original-URI (nginx) or X-Forwarded-Uri "
            "(Caddy, Traefik); docs/edge.md has the configurations"
        )
    if not uri.startswith("/"):
        raise NoOriginalRequest("the original request target must start with /")
    chosen = (_clean(given_method, "method") or method).upper()
    return OriginalRequest(chosen, scheme, host, uri, convention)
