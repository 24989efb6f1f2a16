"""The edge's route table: which request needs what, decided by the policy engine.

A route matches a request by host, path pattern and method, and says what a request there
needs:

- ``allow: anonymous``: nothing (no credential needed; identity headers are still set,
  empty, and filled when a credential is given);
- ``allow: authenticated``: any valid credential;
- ``allow: policy`` (the default when ``resource`` is given): the policy engine allows the
  caller ``action`` on the object the path names: ``resource`` type, ``id``,
  ``organization`` and ``project`` taken from the path's ``{placeholders}``.

Routes are tried in order; the first that matches decides. A request no route matches is
denied (403): the table fails closed. The table is pure data, validated as a whole with an
error that names the route and field (``/routes/2/path``), so a bad edit never half-applies.

Path patterns are ``/``-separated segments: a literal, ``{name}`` (one non-empty segment,
captured), ``*`` (one segment) or, last only, ``**`` (any number of segments, none
included). Matching is on the canonical path (:func:`canonical_path`): a path with ``.`` or
``..`` segments, empty segments, or encoded ``/``, ``\\`` or control characters is refused
rather than guessed at, since the app behind the proxy may read it differently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final
from urllib.parse import unquote

from watchword.errors import InvalidInput, NonCanonicalPath

__all__ = [
    "METHODS",
    "normal_host",
    "Allow",
    "Match",
    "NonCanonicalPath",
    "Route",
    "RouteTable",
    "canonical_path",
    "parse_routes",
]

METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)
MAX_ROUTES: Final = 10_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_PLACEHOLDER = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]{0,31})\}$")
_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,31})\}")
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*(:\d{1,5})?$")
_LITERAL = re.compile(r"^[A-Za-z0-9\-._~!$&'()+,;=:@%]+$")
# A path that is canonical as it stands: segments of unreserved and sub-delimiter characters
# (no %, ;, \ or control), none empty but a trailing one; dot segments are checked apart.
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,=:@]+)+/?")
_OBJECT_FIELDS: Final = ("id", "organization", "project")


class Allow(StrEnum):
    ANONYMOUS = "anonymous"
    AUTHENTICATED = "authenticated"
    POLICY = "policy"


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    path: str
    hosts: tuple[str, ...] = ()
    methods: frozenset[str] = frozenset()  # empty: any
    allow: Allow = Allow.POLICY
    resource: str | None = None
    action: str | None = None  # None with actions: by method
    actions: Mapping[str, str] = field(default_factory=dict)
    object: Mapping[str, str] = field(default_factory=dict)  # field -> template
    access_token: bool = False
    audience: str | None = None  # sign an assertion for this audience
    _segments: tuple[str, ...] = ()

    def action_for(self, method: str) -> str | None:
        if method in self.actions:
            return self.actions[method]
        if method == "HEAD" and "GET" in self.actions:
            return self.actions["GET"]  # a HEAD is a GET without the body
        return self.action

    def allows_method(self, method: str) -> bool:
        if not self.methods or method in self.methods:
            return True
        return method == "HEAD" and "GET" in self.methods

    def match_path(self, segments: Sequence[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        pattern = self._segments
        if len(segments) == len(pattern) + 1 and segments[-1] == "":
            segments = segments[:-1]  # /admin/ is /admin
        for i, part in enumerate(pattern):
            if part == "**":
                return params  # the rest, however long
            if i >= len(segments):
                return None
            seg = segments[i]
            placeholder = _PLACEHOLDER.match(part)
            if placeholder is not None:
                if not seg:
                    return None  # a placeholder names something: never empty
                params[placeholder.group(1)] = seg
            elif part not in {"*", seg}:
                return None
        return params if len(segments) == len(pattern) else None

    def match_host(self, host: str) -> bool:
        """A host without a port in the table matches the name on any port; with one, only
        that port. ``*.`` stands for exactly one label. ``host`` is normal
        (:func:`normal_host`)."""
        if not self.hosts:
            return True
        bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        for allowed in self.hosts:
            candidate = host if ":" in allowed else bare
            if allowed.startswith("*."):
                suffix = allowed[1:]
                head = candidate[: -len(suffix)]
                if candidate.endswith(suffix) and head and "." not in head:
                    return True
            elif candidate == allowed:
                return True
        return False

    def object_fields(self, params: Mapping[str, str]) -> dict[str, str]:
        return {
            name: _TEMPLATE.sub(lambda m: params[m.group(1)], template)
            for name, template in self.object.items()
        }

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "path": self.path, "allow": self.allow.value}
        if self.hosts:
            out["hosts"] = list(self.hosts)
        if self.methods:
            out["methods"] = sorted(self.methods)
        if self.resource is not None:
            out["resource"] = self.resource
        if self.action is not None:
            out["action"] = self.action
        if self.actions:
            out["actions"] = dict(self.actions)
        if self.object:
            out["object"] = dict(self.object)
        if self.access_token:
            out["access_token"] = True
        if self.audience is not None:
            out["assertion"] = {"audience": self.audience}
        return out


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    params: Mapping[str, str]
    action: str | None
    object: Mapping[str, str]
    method_allowed: bool = True  # False: the route names the path, not this method: deny


@dataclass(frozen=True, slots=True)
class RouteTable:
    routes: tuple[Route, ...]

    @property
    def wants_assertions(self) -> bool:
        return any(r.audience is not None for r in self.routes)

    def match(self, *, host: str, path: str, method: str) -> Match | None:
        """The first route whose host and path match, or ``None`` (then it is denied).
        A route that matches but does not list the method says so (``method_allowed``:
        denied), rather than letting a later, weaker route decide. ``path`` must be
        canonical (:func:`canonical_path`)."""
        segments = path.split("/")[1:] if path != "/" else []
        host = normal_host(host)
        for route in self.routes:
            if not route.match_host(host):
                continue
            params = route.match_path(segments)
            if params is None:
                continue
            return Match(
                route,
                params,
                route.action_for(method),
                route.object_fields(params),
                method_allowed=route.allows_method(method),
            )
        return None


def normal_host(host: str) -> str:
    """``host`` as routes see it: lower case, without the root's trailing dot
    (``Admin.Test.:443`` is ``admin.test:443``), as proxies pick their server by it."""
    host = host.strip().lower()
    name, sep, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    name = name.rstrip(".")
    return f"{name}{sep}{port}"


def canonical_path(raw: str) -> str:
    """The path of a request target (query and fragment dropped), percent-decoded where
    that is unambiguous; :class:`NonCanonicalPath` for what an app might read otherwise."""
    path = raw.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/") or path.startswith("//"):
        raise NonCanonicalPath("the request path must be absolute: /…")
    if path == "/":
        return path
    if _PLAIN_PATH.fullmatch(path) and "/./" not in (tail := path + "/") and "/../" not in tail:
        return path  # the common case: nothing to decode, nothing to refuse
    out: list[str] = []
    segments = path[1:].split("/")
    for i, seg in enumerate(segments):
        if seg == "" and i < len(segments) - 1:  # a trailing slash is fine
            raise NonCanonicalPath("the request path has an empty segment (//)")
        try:
            decoded = unquote(seg, errors="strict") if "%" in seg else seg
        except UnicodeDecodeError:
            raise NonCanonicalPath("the request path is not percent-encoded UTF-8") from None
        if decoded.split(";", 1)[0] in {".", ".."}:
            # ..;/ is .. to Tomcat, Jetty and Spring (path parameters)
            raise NonCanonicalPath("the request path has a . or .. segment")
        if "%" in decoded:
            raise NonCanonicalPath("the request path is percent-encoded twice")
        if any(ch in decoded for ch in "/\\") or any(
            ord(ch) < 0x20 or ord(ch) == 0x7F for ch in decoded
        ):
            raise NonCanonicalPath(
                "the request path has an encoded slash, backslash or control character"
            )
        out.append(decoded)
    return "/" + "/".join(out)


# --- parsing --------------------------------------------------------------------------------


def _fail(message: str, pointer: str) -> InvalidInput:
    return InvalidInput(message, pointer=pointer)


def _str(value: object, pointer: str, *, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(f"{what} must be a non-empty string", pointer)
    return value


def _pattern(value: object, pointer: str) -> tuple[str, tuple[str, ...], set[str]]:
    path = _str(value, pointer, what="path")
    if not path.startswith("/"):
        raise _fail("path must start with /", pointer)
    parts = tuple(path[1:].split("/")) if path != "/" else ()
    names: set[str] = set()
    for i, part in enumerate(parts):
        placeholder = _PLACEHOLDER.match(part)
        if part == "**":
            if i != len(parts) - 1:
                raise _fail("** may only be the last segment", pointer)
        elif placeholder is not None:
            if placeholder.group(1) in names:
                raise _fail(f"placeholder {{{placeholder.group(1)}}} is used twice", pointer)
            names.add(placeholder.group(1))
        elif part != "*" and (not _LITERAL.match(part) or part in {".", ".."}):
            raise _fail(
                f"segment {part!r} is not a literal, {{name}}, * or ** (empty segments, "
                ". and .. never match a canonical path)",
                pointer,
            )
    return path, parts, names


_KNOWN = frozenset(
    {
        "name",
        "path",
        "hosts",
        "methods",
        "allow",
        "resource",
        "action",
        "actions",
        "object",
        "access_token",
        "assertion",
    }
)


def _hosts(raw: object, pointer: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise _fail("hosts is a list of host names", pointer)
    hosts: list[str] = []
    for i, host in enumerate(raw):
        h = _str(host, f"{pointer}/{i}", what="a host").lower()
        if not _HOST.match(h):
            raise _fail(
                f"{host!r} is not a host name (example.com, *.example.com, host:port)",
                f"{pointer}/{i}",
            )
        hosts.append(h)
    return tuple(hosts)


def _methods(raw: object, pointer: str) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(m, str) for m in raw):
        raise _fail("methods is a list of HTTP methods", pointer)
    methods = frozenset(m.upper() for m in raw)
    if bad := sorted(methods - METHODS):
        raise _fail(f"unknown method(s) {', '.join(bad)}", pointer)
    return methods


def _allow(raw: Mapping[str, Any], pointer: str) -> Allow:
    allow_raw = raw.get("allow", "policy" if "resource" in raw else None)
    if allow_raw is None:
        raise _fail(
            "say who may pass: allow: anonymous | authenticated, or a resource and action "
            "for the policy engine",
            pointer,
        )
    try:
        allow = Allow(allow_raw)
    except ValueError:
        raise _fail(
            "allow must be anonymous, authenticated or policy", f"{pointer}/allow"
        ) from None
    if allow is not Allow.POLICY:
        for key in ("resource", "action", "actions", "object"):
            if key in raw:
                raise _fail(f"{key} applies only to allow: policy", f"{pointer}/{key}")
    return allow


def _actions(
    raw: Mapping[str, Any], methods: frozenset[str], pointer: str
) -> tuple[str | None, dict[str, str]]:
    action = raw.get("action")
    if action is not None:
        _str(action, f"{pointer}/action", what="action")
    actions_raw = raw.get("actions", {})
    if not isinstance(actions_raw, Mapping):
        raise _fail("actions maps methods to actions ({GET: read})", f"{pointer}/actions")
    actions: dict[str, str] = {}
    for method, act in actions_raw.items():
        m = str(method).upper()
        if m not in METHODS:
            raise _fail(f"unknown method {method!r}", f"{pointer}/actions/{method}")
        actions[m] = _str(act, f"{pointer}/actions/{method}", what="action")
    if action is None:
        if not actions:
            raise _fail("a policy route needs action, or actions by method", f"{pointer}/action")
        covered = actions.keys() | ({"HEAD"} if "GET" in actions else set())
        uncovered = sorted((methods or METHODS) - covered)
        if uncovered:
            raise _fail(
                f"no action for {', '.join(uncovered)}: add them to actions, give a default "
                "action, or restrict methods",
                f"{pointer}/actions",
            )
    return action, actions


def _object(raw: object, path: str, names: set[str], pointer: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise _fail("object maps id/organization/project to templates", pointer)
    obj: dict[str, str] = {}
    for key, template in raw.items():
        if key not in _OBJECT_FIELDS:
            raise _fail(
                f"object field {key!r} is not one of {', '.join(_OBJECT_FIELDS)}",
                f"{pointer}/{key}",
            )
        text = _str(template, f"{pointer}/{key}", what="a template")
        for used in _TEMPLATE.findall(text):
            if used not in names:
                raise _fail(
                    f"{{{used}}} is not a placeholder of the path {path}", f"{pointer}/{key}"
                )
        obj[str(key)] = text
    return obj


def _audience(raw: object, pointer: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) - {"audience"}:
        raise _fail("assertion is {audience: <the app's URL or id>}", pointer)
    return _str(raw.get("audience"), f"{pointer}/audience", what="audience")


def _route(raw: object, pointer: str) -> Route:
    if not isinstance(raw, Mapping):
        raise _fail("a route is a table (name, path, ...)", pointer)
    for key in raw:
        if key not in _KNOWN:
            raise _fail(f"unknown field {key!r} (known: {', '.join(sorted(_KNOWN))})", pointer)
    name = _str(raw.get("name"), f"{pointer}/name", what="name")
    if not _NAME.match(name):
        raise _fail("name: 1-128 of A-Z a-z 0-9 _ . : -", f"{pointer}/name")
    path, segments, names = _pattern(raw.get("path"), f"{pointer}/path")
    methods = _methods(raw.get("methods", []), f"{pointer}/methods")
    allow = _allow(raw, pointer)
    resource: str | None = None
    action: str | None = None
    actions: dict[str, str] = {}
    obj: dict[str, str] = {}
    if allow is Allow.POLICY:
        resource = _str(raw.get("resource"), f"{pointer}/resource", what="resource")
        action, actions = _actions(raw, methods, pointer)
        obj = _object(raw.get("object", {}), path, names, f"{pointer}/object")
    access_token = raw.get("access_token", False)
    if not isinstance(access_token, bool):
        raise _fail("access_token is true or false", f"{pointer}/access_token")
    return Route(
        name=name,
        path=path,
        hosts=_hosts(raw.get("hosts", []), f"{pointer}/hosts"),
        methods=methods,
        allow=allow,
        resource=resource,
        action=action,
        actions=actions,
        object=obj,
        access_token=access_token,
        audience=_audience(raw.get("assertion"), f"{pointer}/assertion"),
        _segments=segments,
    )


def parse_routes(document: object) -> RouteTable:
    """The table of ``{routes: [...]}`` (a parsed YAML/TOML/JSON document), validated whole."""
    if not isinstance(document, Mapping) or set(document) - {"routes"}:
        raise _fail("the route table is {routes: [...]}", "")
    raw = document.get("routes")
    if not isinstance(raw, list):
        raise _fail("routes is a list", "/routes")
    if len(raw) > MAX_ROUTES:
        raise _fail(f"at most {MAX_ROUTES} routes", "/routes")
    routes = tuple(_route(r, f"/routes/{i}") for i, r in enumerate(raw))
    seen: set[str] = set()
    for i, route in enumerate(routes):
        if route.name in seen:
            raise _fail(f"route name {route.name!r} is used twice", f"/routes/{i}/name")
        seen.add(route.name)
    return RouteTable(routes)
