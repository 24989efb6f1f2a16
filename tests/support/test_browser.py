"""The browser fixture drives Debian's Chromium against a live server and saves screenshots.

FastAPI's ``/docs`` (Swagger UI) loads its script and stylesheet from cdn.jsdelivr.net, which
this closed network cannot reach, so it never renders an operation here; the browser test
reads ``/openapi.json`` as Chromium shows it instead.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from tests.support.browser import shot
from tests.support.live import LiveWatchword

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_facts(path: Path) -> tuple[int, int, int]:
    """Width, height and the number of distinct bytes in the decoded pixel rows of a PNG;
    raises if the file is not a well-formed PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height = struct.unpack(">II", chunks[0][1][:8])
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    return width, height, len(set(pixels))


async def test_the_browser_shows_a_live_servers_openapi_document(
    live_watchword: LiveWatchword, browser_page: Page
) -> None:
    server = live_watchword()

    response = await browser_page.goto(f"{server.url}/openapi.json")
    assert response is not None and response.status == 200
    document = json.loads(await browser_page.locator("pre").first.inner_text())
    assert document["info"]["title"] == "watchword"
    assert "/healthz" in document["paths"]

    path = await shot(browser_page, "openapi")
    assert path.parent.parent.name == "artifacts"
    assert path.name == "01-openapi.png"
    assert "test_the_browser_shows_a_live_servers_openapi_document" in path.parent.name
    width, height, distinct = png_facts(path)
    assert width == 1280 and height >= 800
    assert distinct > 2, "the screenshot is blank"
    assert (await shot(browser_page, "again")).name == "02-again.png"


async def test_the_browser_stays_off_the_network(browser_page: Page) -> None:
    with pytest.raises(PlaywrightError, match="ERR_NAME_NOT_RESOLVED"):
        await browser_page.goto("https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/", timeout=10_000)
