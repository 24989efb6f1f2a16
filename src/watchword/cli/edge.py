"""``watchword edge``: the forward-auth route table, explained; proxy configurations.

- ``watchword edge routes``: the table as loaded (exit 2 with the field named when it is bad);
- ``watchword edge explain --url URL --subject ISSUER|ID``: which route a request takes and
  why it would be allowed or denied, with the policy engine's explanation;
- ``watchword edge config nginx|caddy|traefik|envoy|ingress-nginx``: a configuration for the
  proxy that sets and blanks every identity header (the ones tests run against real proxies).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.table import Table

from watchword.cli.output import console, emit, fail, run_with_services, settings_from
from watchword.edge import proxyconf
from watchword.edge.original import OriginalRequest
from watchword.edge.service import load_table
from watchword.errors import InvalidInput, WatchwordError
from watchword.principal import Principal, PrincipalKind
from watchword.services import Services

__all__ = ["NAME", "app"]

NAME = "edge"
app = typer.Typer(
    help="Forward-auth for reverse proxies: routes, explain, proxy configurations.",
    no_args_is_help=True,
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


@app.command("routes")
def routes(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Load and check the route table (edge.routes_file or edge.routes), then list it."""
    settings = settings_from(ctx)
    try:
        table = load_table(settings.edge)
    except WatchwordError as exc:
        fail(exc, as_json=as_json)
    data = {"routes": [r.to_dict() for r in table.routes]}

    def human() -> None:
        grid = Table("#", "name", "hosts", "path", "methods", "needs")
        for i, route in enumerate(table.routes):
            needs = route.allow.value
            if route.resource is not None:
                acts = route.action or ""
                if route.actions:
                    acts = ", ".join(f"{m}: {a}" for m, a in sorted(route.actions.items())) + (
                        f", else {route.action}" if route.action else ""
                    )
                needs = f"{route.resource} {acts}"
            grid.add_row(
                str(i),
                route.name,
                ", ".join(route.hosts) or "any",
                route.path,
                ", ".join(sorted(route.methods)) or "any",
                needs,
            )
        console.print(grid)
        console.print("A request no route matches is denied.")

    emit(data, as_json=as_json, human=human)


def _subject(value: str) -> tuple[str, str]:
    issuer, sep, subject = value.rpartition("|")
    if not sep or not issuer or not subject:
        raise InvalidInput("--subject is ISSUER|ID, e.g. https://id.example.com|alice")
    return issuer, subject


@app.command("explain")
def explain(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(help="The request's URL, e.g. https://app.example/x.")],
    subject: Annotated[
        str | None, typer.Option(help="ISSUER|ID of the caller (none: anonymous).")
    ] = None,
    method: Annotated[str, typer.Option(help="The request's method.")] = "GET",
    claims: Annotated[
        str | None, typer.Option(help="The caller's verified claims, as JSON (optional).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Which route a request takes and why it would pass or not, as forward-auth decides."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        fail(InvalidInput("--url must be an absolute http(s) URL"), as_json=as_json)
    uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    original = OriginalRequest(method.upper(), parts.scheme, parts.netloc.lower(), uri, "cli")
    try:
        parsed_claims: dict[str, Any] = json.loads(claims) if claims else {}
    except ValueError:
        fail(InvalidInput("--claims must be a JSON object"), as_json=as_json)
    if not isinstance(parsed_claims, dict):
        fail(InvalidInput("--claims must be a JSON object"), as_json=as_json)
    principal = None
    if subject is not None:
        try:
            issuer, subject_id = _subject(subject)
        except InvalidInput as exc:
            fail(exc, as_json=as_json)
        principal = Principal(
            kind=PrincipalKind.API_TOKEN,
            id="edge-explain",
            issuer=issuer,
            subject=subject_id,
            claims=parsed_claims,
        )

    async def body(services: Services) -> dict[str, Any]:
        verdict = await services.edge.verify(original, principal, explain=True)
        out: dict[str, Any] = {
            "request": {"method": original.method, "url": original.url},
            "route": verdict.route,
            "status": verdict.status,
            "outcome": verdict.outcome,
            "detail": verdict.detail,
        }
        if verdict.explanation is not None:
            out["explanation"] = verdict.explanation.to_dict()
            out["text"] = verdict.explanation.to_text()
        if verdict.allowed:
            out["headers"] = {
                k: ("<redacted>" if k == services.runtime.settings.edge.headers.assertion else v)
                for k, v in verdict.headers.items()
                if v
            }
        return out

    data = run_with_services(ctx, body, as_json=as_json)

    def human() -> None:
        word = {200: "ALLOWED", 401: "SIGN-IN NEEDED", 403: "DENIED"}[int(data["status"])]
        console.print(f"{data['request']['method']} {data['request']['url']}")
        console.print(f"route: {data['route'] or '(none)'}")
        console.print(f"{word} ({data['status']}, {data['outcome']}): {data['detail']}")
        if "text" in data:
            console.print(data["text"])
        for name, value in data.get("headers", {}).items():
            console.print(f"  {name}: {value}")

    emit(data, as_json=as_json, human=human)
    if data["status"] != 200:
        raise typer.Exit(1)


def _watchword_cookies(session_cookie: str) -> tuple[str, ...]:
    """The names of watchword's cookies, which the app behind the proxy must never get:
    the session cookie (``sessions.cookie_name``) and the sign-in binding cookie, each as
    named in development and with the ``__Host-`` prefix it has everywhere else (both, so
    one configuration fits whichever environment watchword runs in)."""
    # Imported here: only this command needs the sign-in routes (and their templates).
    from watchword.api.routes.signin import BINDING_COOKIE

    return tuple(
        prefix + name
        for name in dict.fromkeys((session_cookie, BINDING_COOKIE))
        for prefix in ("", proxyconf.HOST_PREFIX)
    )


class Proxy(StrEnum):
    NGINX = "nginx"
    CADDY = "caddy"
    TRAEFIK = "traefik"
    ENVOY = "envoy"
    INGRESS_NGINX = "ingress-nginx"


@app.command("config")
def config(
    ctx: typer.Context,
    proxy: Annotated[Proxy, typer.Argument(help="The reverse proxy.")],
    app_url: Annotated[
        str | None,
        typer.Option(
            "--app", help="The app behind the proxy, http://host:port (nginx, Caddy, Traefik)."
        ),
    ] = None,
    watchword: Annotated[
        str | None,
        typer.Option(
            help="How the proxy reaches watchword, http://host:port (default: this "
            "configuration's host and port)."
        ),
    ] = None,
    listen: Annotated[str, typer.Option(help="nginx: listen (port or host:port).")] = "80",
    server_name: Annotated[str, typer.Option(help="nginx: server_name.")] = "_",
    upstream_prefix: Annotated[
        str | None,
        typer.Option(
            help="nginx: the upstream blocks' names start with this (default: derived from "
            "--server-name and --listen)."
        ),
    ] = None,
    address: Annotated[str, typer.Option(help="Caddy: the site address.")] = ":80",
    rule: Annotated[
        str, typer.Option(help="Traefik: the router rule, e.g. Host(`app.example.com`).")
    ] = "PathPrefix(`/`)",
    cluster: Annotated[str, typer.Option(help="Envoy: the cluster that is watchword.")] = (
        "watchword"
    ),
) -> None:
    """Print a configuration for PROXY that asks watchword about every request and sets (or
    drops) every identity header, whatever the client sent (docs/edge.md explains each)."""
    settings = settings_from(ctx)
    headers = settings.edge.headers.names()
    cookies = _watchword_cookies(settings.sessions.cookie_name)
    ww = watchword or f"http://{settings.host}:{settings.port}"
    try:
        if proxy in {Proxy.NGINX, Proxy.CADDY, Proxy.TRAEFIK} and app_url is None:
            raise ValueError(f"{proxy.value} needs --app http://host:port (the app behind it)")
        if proxy is Proxy.NGINX:
            assert app_url is not None  # noqa: S101 - checked above
            text = proxyconf.nginx_server(
                listen=listen,
                server_name=server_name,
                watchword=ww,
                app=app_url,
                headers=headers,
                cookies=cookies,
                upstream_prefix=upstream_prefix,
            )
        elif proxy is Proxy.CADDY:
            assert app_url is not None  # noqa: S101
            text = proxyconf.caddyfile_site(
                address=address, watchword=ww, app=app_url, headers=headers, cookies=cookies
            )
        elif proxy is Proxy.TRAEFIK:
            # Traefik's stock middlewares cannot remove single cookies, nor watchword's
            # credentials from Authorization (docs/edge.md).
            assert app_url is not None  # noqa: S101
            text = proxyconf.traefik_dynamic(watchword=ww, app=app_url, rule=rule, headers=headers)
        elif proxy is Proxy.ENVOY:
            text = proxyconf.envoy_http_filter(
                watchword_cluster=cluster, headers=headers, cookies=cookies
            )
        else:
            text = proxyconf.ingress_nginx_annotations(
                watchword=ww, headers=headers, cookies=cookies
            )
    except ValueError as exc:
        fail(InvalidInput(str(exc)))
    sys.stdout.write(text)
