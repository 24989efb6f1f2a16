"""A real browser for tests: Debian's Chromium driven by Playwright's async API.

``browser_page`` launches ``/usr/bin/chromium`` headless, once per test that asks for it,
with a fresh profile, and hands the test a page. ``await shot(page, "login")`` saves a
screenshot as ``artifacts/<test node id>/<NN>-login.png`` at the repository root; the
screenshots of a run are listed at its end and attached to the test as the
``screenshot`` property (JUnit XML). A test that fails gets a last ``NN-failed.png``.

Never ``playwright install``: Playwright's own browser builds cannot be downloaded here.
``scripts/components`` installs Debian's ``chromium`` package; without it these tests skip,
or fail with ``CI=true``.

The network here is closed: Chromium's own background traffic is switched off by flags, and
every host name but the loopback ones resolves to nothing, so a page that loads a script from
a CDN (FastAPI's ``/docs``) fails at once instead of waiting for a timeout.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright
from playwright.async_api import Error as PlaywrightError
from tests.conftest import _unavailable

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "browser_page", "chromium_installed", "shot"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_HINT = (
    "Chromium is not installed at /usr/bin/chromium; `scripts/components` installs it "
    "(as root: `apt-get update && apt-get install -y --no-install-recommends chromium`)"
)
# --no-sandbox: the tests run as root. The rest keep Chromium off the closed network, where its
# background connections are refused many at a time and its start-up look-ups fail.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
)
LAUNCH_TIMEOUT_MS = 60_000
SHOT_TIMEOUT_MS = 15_000

_SCREENSHOTS = pytest.StashKey[list[Path]]()
_CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@dataclass
class _Shots:
    """Where one test's screenshots go, and how many it has taken."""

    folder: Path
    record: Callable[[str, object], None]
    run_list: list[Path]
    taken: int = field(default=0)

    def next_path(self, name: str) -> Path:
        if self.taken == 0:  # a test's folder holds only this run's screenshots
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
        self.taken += 1
        path = self.folder / f"{self.taken:02d}-{_sanitize(name)}.png"
        self.record("screenshot", str(path))
        self.run_list.append(path)
        return path


_shots_of: dict[BrowserContext, _Shots] = {}


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "test"


def chromium_installed() -> bool:
    return CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)


def artifacts_dir(config: pytest.Config) -> Path:
    """``artifacts/`` at the repository root (gitignored)."""
    return config.rootpath / "artifacts"


async def shot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Save a screenshot of ``page`` (the viewport, 1280x800) as
    ``artifacts/<test>/<NN>-<name>.png`` and return its path. ``page`` must come from
    ``browser_page`` (or its context).

    ``full_page=True`` takes the whole page, but headless Chromium hangs until the timeout on
    a page taller than 16384 px (seen on ``/openapi.json``, 18376 px), so it is not the
    default."""
    shots = _shots_of.get(page.context)
    if shots is None:
        raise LookupError("shot() takes a page of the browser_page fixture's context")
    path = shots.next_path(name)
    await page.screenshot(path=str(path), full_page=full_page, timeout=SHOT_TIMEOUT_MS)
    return path


@pytest.fixture
async def browser_page(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> AsyncIterator[Page]:
    """A page of a headless Debian Chromium launched for this test alone, with a fresh
    profile (its own user-data dir); the browser is closed after the test."""
    if not chromium_installed():
        _unavailable(CHROMIUM_HINT, FileNotFoundError(str(CHROMIUM)))
    profile = tmp_path / "chromium-profile"
    async with async_playwright() as playwright:
        try:
            context = await playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=str(CHROMIUM),
                headless=True,
                args=list(CHROMIUM_ARGS),
                timeout=LAUNCH_TIMEOUT_MS,
                viewport={"width": 1280, "height": 800},
            )
        except PlaywrightError as exc:
            _unavailable(CHROMIUM_HINT, exc)
            raise  # _unavailable does not return
        shots = _Shots(
            folder=artifacts_dir(request.config) / _sanitize(request.node.nodeid),
            record=record_property,
            run_list=request.config.stash.setdefault(_SCREENSHOTS, []),
        )
        _shots_of[context] = shots
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            yield page
            report = request.node.stash.get(_CALL_REPORT, None)
            if report is not None and report.failed and not page.is_closed():
                with contextlib.suppress(PlaywrightError):  # the test's own error matters more
                    await shot(page, "failed")
        finally:
            _shots_of.pop(context, None)
            await context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_REPORT] = report
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    paths = terminalreporter.config.stash.get(_SCREENSHOTS, [])
    if paths:
        terminalreporter.write_sep("-", f"{len(paths)} screenshot(s)")
        root = terminalreporter.config.rootpath
        for path in paths:
            shown = path.relative_to(root) if path.is_relative_to(root) else path
            terminalreporter.write_line(str(shown))
