"""A real upstream OpenID Provider for tests: panva's certified ``oidc-provider`` (npm,
pinned in ``tests/oidc/provider/package-lock.json``) run by Node on 127.0.0.1.

Registered for the whole suite by ``pytest_plugins`` in ``tests/conftest.py``. Fixtures:

* ``oidc_provider`` (session): one provider with the confidential client ``watchword-test``
  (client_secret_basic, a random secret; redirect ``http://testserver/auth/callback``,
  post-logout redirect ``http://testserver/auth/signed-out``) and the accounts ``alice`` and
  ``bob``. Shared by every test: do not stop it or rotate its keys, use the factory for that.
* ``oidc_provider_factory`` (function): ``oidc_provider_factory(clients=..., accounts=...,
  ttl=...)`` starts a fresh provider process on a free port, stopped after the test.

``OidcProvider.authorize`` and ``OidcProvider.end_session`` act as the user's browser at the
provider with a real ``httpx.AsyncClient`` (the "agent", which keeps the provider's cookies).

The provider's rules (see server.mjs): PKCE S256 is required for every client; a refresh token
is always issued (no ``prompt=consent`` / ``offline_access`` needed) and rotated on every use
(reusing a rotated one revokes the whole grant); every requested scope is granted without a
consent page; claims of the granted scopes are in the ID token as well as at userinfo (scope
``profile`` → name, ``email`` → email and email_verified, ``groups`` → groups, ``authz`` →
``https://watchword.dev/authz``); any password is accepted for a known login and an unknown
login ends the authorization with ``error=access_denied``. Its state survives ``stop()`` /
``start()`` (written to a file), so a restart simulates an outage, not a reset.

Node and the npm packages are needed: without Node, or when ``npm ci`` cannot install the
packages, a test using these fixtures is skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any, NoReturn, Protocol
from urllib.parse import urlencode, urljoin

import httpx
import pytest

PROVIDER_DIR = Path(__file__).resolve().parent / "provider"
SERVER_SCRIPT = PROVIDER_DIR / "server.mjs"
AUTHZ_CLAIM = "https://watchword.dev/authz"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# Generous: a loaded 2-core CI machine can take several seconds to start Node.
READY_TIMEOUT_S = 60.0
NPM_TIMEOUT_S = 600.0
DEV_PASSWORD = "any password"  # the dev login form accepts any password for a known login

DEFAULT_CLIENT_ID = "watchword-test"
DEFAULT_REDIRECT_URI = "http://testserver/auth/callback"
DEFAULT_POST_LOGOUT_REDIRECT_URI = "http://testserver/auth/signed-out"

DEFAULT_ACCOUNTS: dict[str, dict[str, Any]] = {
    "alice": {
        "sub": "alice-0001",
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice Example",
        "groups": ["engineering", "admins"],
        AUTHZ_CLAIM: {"acctype": "user", "orgIds": ["o1"]},
    },
    "bob": {
        "sub": "bob-0002",
        "email": "bob@example.com",
        "email_verified": False,
        "name": "Bob Example",
        "groups": ["sales"],
        AUTHZ_CLAIM: {"acctype": "user", "orgIds": ["o1", "o2"]},
    },
}


class OidcProviderError(AssertionError):
    """The provider did not do what a test's user agent expected (an error page, a refused
    login form, an unexpected page)."""


def _unavailable(hint: str, detail: object) -> NoReturn:
    # The pattern of tests/conftest.py: skip locally, fail when CI=true.
    if IN_CI:
        pytest.fail(f"{hint} (CI=true makes this test mandatory): {detail}", pytrace=False)
    pytest.skip(f"{hint}: {detail}")


@dataclass
class OidcClient:
    """A client (relying party) registered at the provider; the fields are its metadata."""

    client_id: str
    client_secret: str | None = None
    redirect_uris: list[str] = field(default_factory=lambda: [DEFAULT_REDIRECT_URI])
    post_logout_redirect_uris: list[str] = field(
        default_factory=lambda: [DEFAULT_POST_LOGOUT_REDIRECT_URI]
    )
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = True
    # client_secret_basic, client_secret_post, or private_key_jwt (with ``jwks``: public keys).
    token_endpoint_auth_method: str = "client_secret_basic"
    jwks: dict[str, Any] | None = None
    id_token_signed_response_alg: str | None = None

    def __post_init__(self) -> None:
        if self.token_endpoint_auth_method == "private_key_jwt":
            if not self.jwks:
                raise ValueError("private_key_jwt needs the client's public keys in jwks")
        elif self.client_secret is None:
            self.client_secret = secrets.token_urlsafe(24)

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "client_id": self.client_id,
            "redirect_uris": self.redirect_uris,
            "post_logout_redirect_uris": self.post_logout_redirect_uris,
            "backchannel_logout_session_required": self.backchannel_logout_session_required,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
        }
        optional = {
            "client_secret": self.client_secret,
            "backchannel_logout_uri": self.backchannel_logout_uri,
            "jwks": self.jwks,
            "id_token_signed_response_alg": self.id_token_signed_response_alg,
        }
        config.update({key: value for key, value in optional.items() if value is not None})
        return config


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OidcProvider:
    """One ``oidc-provider`` process on ``127.0.0.1:<port>`` (issuer ``http://127.0.0.1:<port>``).

    ``stop()`` and ``start()`` keep the port, the keys and every session, grant and token.
    """

    def __init__(
        self,
        *,
        workdir: Path,
        clients: Sequence[OidcClient],
        accounts: Mapping[str, Mapping[str, Any]],
        ttl: Mapping[str, int] | None = None,
        clock_tolerance: int = 0,
        rotate_refresh_tokens: bool = True,
        expires_with_session: bool = False,
    ) -> None:
        self.port = _free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.discovery_url = f"{self.issuer}/.well-known/openid-configuration"
        self.clients: dict[str, OidcClient] = {client.client_id: client for client in clients}
        self.accounts: dict[str, dict[str, Any]] = {
            login: dict(claims) for login, claims in accounts.items()
        }
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "oidc-provider.json"
        self.state_path = workdir / "oidc-provider-state.json"
        self.log_path = workdir / "oidc-provider.log"
        self._config: dict[str, Any] = {
            "port": self.port,
            "state_path": str(self.state_path),
            "cookie_keys": [secrets.token_urlsafe(32)],
            "clients": [client.to_config() for client in clients],
            "accounts": self.accounts,
            "ttl": dict(ttl or {}),
            "clock_tolerance": clock_tolerance,
            "rotate_refresh_tokens": rotate_refresh_tokens,
            "expires_with_session": expires_with_session,
            "token_failure_path": str(workdir / "token-failure.json"),
        }
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- process ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, rotate_keys: bool = False) -> None:
        """Start the process (again) on the same port; returns once discovery answers."""
        if self.running:
            raise RuntimeError("the OIDC provider is already running")
        self.config_path.write_text(json.dumps({**self._config, "rotate_keys": rotate_keys}))
        if self._log is None:
            self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            ["node", str(SERVER_SCRIPT), str(self.config_path)],
            cwd=PROVIDER_DIR,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the OIDC provider exited with {self._process.returncode} before it was "
                    f"ready; its log ({self.log_path}):\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.discovery_url, timeout=2.0).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"the OIDC provider did not answer at {self.discovery_url} within "
                    f"{READY_TIMEOUT_S:.0f} s; its log:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL if it hangs); afterwards the port refuses
        connections."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def fail_token_requests(self, status: int | None, *, retry_after: str | None = None) -> None:
        """From now on the token endpoint answers ``status`` (with ``Retry-After``), as a
        provider that throttles (429) or is down behind its proxy (503); ``None``: normal."""
        path = Path(self._config["token_failure_path"])
        if status is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(json.dumps({"status": status, "retry_after": retry_after}))

    def rotate_keys(self) -> None:
        """Restart with a new RS256 and a new ES256 signing key (new ``kid``s). The old keys
        stay published in the JWKS; new tokens are signed with the new ones."""
        self.stop()
        self.start(rotate_keys=True)

    def close(self) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 4000) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def events(self) -> list[dict[str, Any]]:
        """The provider's JSON event lines so far (``backchannel.error``, ``grant.revoked``...)."""
        found = []
        for line in self.log_tail(chars=1_000_000).splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    found.append(json.loads(line))
        return found

    # -- endpoints -------------------------------------------------------------------------

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/auth"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def end_session_endpoint(self) -> str:
        return f"{self.issuer}/session/end"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    # -- the user agent --------------------------------------------------------------------

    async def authorize(
        self,
        url: str,
        *,
        login: str,
        agent: httpx.AsyncClient | None = None,
        password: str = DEV_PASSWORD,
    ) -> str:
        """Open ``url`` (an authorization request) as the user's browser: sign in as ``login``
        on the provider's login form if it asks, follow the provider's redirects, and return
        the redirect to the relying party (``code`` and ``state``, or ``error``) without
        requesting it. With the same ``agent`` a second authorization reuses the provider
        session: no login form, so ``login`` is then ignored (the session's user is used).
        Raises ``OidcProviderError`` on an error page or an unexpected page."""
        async with _agent(agent) as browser:
            response = await browser.get(url, follow_redirects=False)
            logged_in = False
            for _ in range(20):
                if response.is_redirect:
                    location = urljoin(str(response.url), response.headers["location"])
                    if not self._at_provider(location):
                        return location
                    response = await browser.get(location, follow_redirects=False)
                    continue
                form = _login_form(response)
                if form is None or logged_in:
                    raise OidcProviderError(self._unexpected(response, "during authorization"))
                action, fields = form
                fields.update(login=login, password=password)
                logged_in = True
                response = await browser.post(action, data=fields, follow_redirects=False)
            raise OidcProviderError(f"too many redirects at the provider, last {response.url}")

    async def end_session(
        self,
        url_or_params: str | Mapping[str, str],
        agent: httpx.AsyncClient | None = None,
    ) -> str:
        """RP-initiated logout as the user's browser: open the end_session URL (or the
        end_session endpoint with these parameters: ``id_token_hint``, ``client_id``,
        ``post_logout_redirect_uri``, ``state``), confirm "Yes, sign me out", and return where
        the provider redirects (the post_logout_redirect_uri with ``state``, or the provider's
        own "signed out" page). Back-channel logout tokens have been delivered (or have failed:
        see ``events()``) before this returns."""
        if isinstance(url_or_params, str):
            url = url_or_params
        else:
            url = f"{self.end_session_endpoint}?{urlencode(dict(url_or_params))}"
        async with _agent(agent) as browser:
            response = await browser.get(url, follow_redirects=False)
            forms = _forms(response)
            if response.status_code != 200 or not forms:
                raise OidcProviderError(self._unexpected(response, "at end_session"))
            # With a session: the "Do you want to sign-out" page (form op.logoutForm, xsrf);
            # without one: an auto-submitting form that already says logout=yes.
            action, fields = forms[0]
            fields["logout"] = "yes"
            response = await browser.post(action, data=fields, follow_redirects=False)
            if not response.is_redirect:
                raise OidcProviderError(self._unexpected(response, "confirming end_session"))
            return urljoin(str(response.url), response.headers["location"])

    def _at_provider(self, url: str) -> bool:
        return url == self.issuer or url.startswith(self.issuer + "/")

    def _unexpected(self, response: httpx.Response, when: str) -> str:
        return (
            f"unexpected {response.status_code} from {response.url} {when}: "
            f"{response.text[:2000]}\nprovider log tail:\n{self.log_tail(2000)}"
        )


@contextlib.asynccontextmanager
async def _agent(agent: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    if agent is not None:
        yield agent
        return
    async with httpx.AsyncClient(timeout=30.0) as fresh:
        yield fresh


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[dict[str, str], dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append((attributes, {}))
        elif tag == "input" and self.forms and attributes.get("name"):
            self.forms[-1][1][attributes["name"]] = attributes.get("value", "")


def _forms(response: httpx.Response) -> list[tuple[str, dict[str, str]]]:
    if "html" not in response.headers.get("content-type", ""):
        return []
    parser = _FormParser()
    parser.feed(response.text)
    return [
        (urljoin(str(response.url), attributes.get("action", "")), fields)
        for attributes, fields in parser.forms
    ]


def _login_form(response: httpx.Response) -> tuple[str, dict[str, str]] | None:
    if response.status_code != 200:
        return None
    for action, fields in _forms(response):
        if fields.get("prompt") == "login":
            return action, fields
    return None


# -- installing the npm packages ------------------------------------------------------------


def _pinned_version() -> str:
    manifest = json.loads((PROVIDER_DIR / "package.json").read_text())
    version: str = manifest["dependencies"]["oidc-provider"]
    return version


def _installed_version() -> str | None:
    try:
        manifest = json.loads(
            (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").read_text()
        )
    except (FileNotFoundError, ValueError):
        return None
    version: str = manifest["version"]
    return version


def ensure_provider_installed() -> None:
    """``npm ci`` in tests/oidc/provider unless the pinned oidc-provider is installed there."""
    hint = "the test OIDC provider needs Node.js (node, npm) and its npm packages"
    if shutil.which("node") is None:
        _unavailable(hint, "`node` is not on PATH")
    if _installed_version() == _pinned_version():
        return
    npm = shutil.which("npm")
    if npm is None:
        _unavailable(hint, "`npm` is not on PATH")
    digest = hashlib.sha256(str(PROVIDER_DIR).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"watchword-oidc-npm-{digest}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest process may be installing
        if _installed_version() == _pinned_version():
            return
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
                cwd=PROVIDER_DIR,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            _unavailable(f"{hint}; `npm ci` in {PROVIDER_DIR} timed out", exc)
        if done.returncode != 0 or _installed_version() != _pinned_version():
            _unavailable(
                f"{hint}; `npm ci --no-audit --no-fund` in {PROVIDER_DIR} failed "
                f"(exit {done.returncode})",
                (done.stderr or done.stdout)[-3000:],
            )


# -- fixtures ---------------------------------------------------------------------------------


def default_client() -> OidcClient:
    """The confidential client ``watchword-test`` with a fresh random secret."""
    return OidcClient(client_id=DEFAULT_CLIENT_ID, client_secret=secrets.token_urlsafe(24))


class OidcProviderFactory(Protocol):
    def __call__(
        self,
        *,
        clients: Sequence[OidcClient] | None = None,
        accounts: Mapping[str, Mapping[str, Any]] | None = None,
        ttl: Mapping[str, int] | None = None,
        clock_tolerance: int = 0,
        rotate_refresh_tokens: bool = True,
        expires_with_session: bool = False,
    ) -> OidcProvider: ...


@pytest.fixture(scope="session")
def oidc_provider_installed() -> None:
    ensure_provider_installed()


@pytest.fixture
def oidc_provider_factory(
    oidc_provider_installed: None, tmp_path: Path
) -> Iterator[OidcProviderFactory]:
    """Starts fresh providers (each on a free port, logging to the test's tmp dir); every one
    is stopped after the test. ``clients`` defaults to ``[default_client()]``, ``accounts`` to
    alice and bob; ``ttl`` overrides seconds per model (AccessToken 300, IdToken 300,
    RefreshToken 86400, Grant and Session 14 days, AuthorizationCode 60)."""
    started: list[OidcProvider] = []

    def start(
        *,
        clients: Sequence[OidcClient] | None = None,
        accounts: Mapping[str, Mapping[str, Any]] | None = None,
        ttl: Mapping[str, int] | None = None,
        clock_tolerance: int = 0,
        rotate_refresh_tokens: bool = True,
        expires_with_session: bool = False,
    ) -> OidcProvider:
        provider = OidcProvider(
            workdir=tmp_path / f"oidc-provider-{len(started)}",
            clients=list(clients) if clients is not None else [default_client()],
            accounts=accounts if accounts is not None else DEFAULT_ACCOUNTS,
            ttl=ttl,
            clock_tolerance=clock_tolerance,
            rotate_refresh_tokens=rotate_refresh_tokens,
            expires_with_session=expires_with_session,
        )
        started.append(provider)
        provider.start()
        return provider

    try:
        yield start
    finally:
        for provider in started:
            provider.close()


@pytest.fixture(scope="session")
def oidc_provider(
    oidc_provider_installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OidcProvider]:
    """One provider for the whole run: client ``watchword-test`` (``.clients[
    "watchword-test"]``), accounts alice and bob. Do not stop it or rotate its keys."""
    provider = OidcProvider(
        workdir=tmp_path_factory.mktemp("oidc-provider"),
        clients=[default_client()],
        accounts=DEFAULT_ACCOUNTS,
    )
    try:
        provider.start()
        yield provider
    finally:
        provider.close()
