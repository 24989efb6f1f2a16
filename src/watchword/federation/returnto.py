"""Where a browser may be sent after sign-in or sign-out: ``return_to`` without open redirects.

Allowed: a path on watchword's own origin (``/app?x=1``), or an absolute http(s) URL whose
origin is watchword's own or one of ``oidc.return_to_origins``. Refused, among others:
``//evil.example`` and ``/\\evil.example`` (browsers read both as another host),
``https://evil.example``, ``javascript:…``, ``https://user@good.example``, control
characters and backslashes anywhere, and anything longer than 2,048 characters.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from watchword.errors import ReturnToRefused

__all__ = ["MAX_RETURN_TO", "ReturnTo", "origin_of"]

MAX_RETURN_TO = 2048


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower case (the default port left out); ``null``
    for what cannot be parsed (it matches no allowed origin)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "null"
    host = (parts.hostname or "").lower()
    if not parts.scheme or not host:
        return "null"
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    netloc = host if port is None or port == default else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}"


class ReturnTo:
    """The return_to rule of one deployment."""

    def __init__(self, own_origin: str, other_origins: Iterable[str] = ()) -> None:
        self.own_origin = origin_of(own_origin)
        self.origins = frozenset({self.own_origin, *(origin_of(o) for o in other_origins)})

    def check(self, value: str | None, *, default: str = "/") -> str:
        """``value`` if it is an allowed destination (``default`` when absent), else
        :class:`ReturnToRefused`."""
        if value is None or value == "":
            return default
        if len(value) > MAX_RETURN_TO:
            raise ReturnToRefused("return_to is too long", pointer="/query/return_to")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value) or "\\" in value:
            raise ReturnToRefused(
                "return_to has control characters or backslashes", pointer="/query/return_to"
            )
        if value.startswith("/"):
            parts = urlsplit(value)
            if value.startswith("//") or parts.scheme or parts.netloc:
                raise ReturnToRefused(
                    "return_to must be a path on this site or an allowed origin",
                    pointer="/query/return_to",
                )
            return value
        try:
            parts = urlsplit(value)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if (
            not port_ok
            or parts.scheme not in {"http", "https"}
            or not parts.hostname
            or parts.username is not None
            or parts.password is not None
            or origin_of(value) not in self.origins
        ):
            raise ReturnToRefused(
                "return_to must be a path on this site or an allowed origin",
                pointer="/query/return_to",
            )
        return value
