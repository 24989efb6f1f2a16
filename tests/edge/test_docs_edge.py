"""docs/edge.md shows the proxy configurations ``watchword edge config`` prints, verbatim."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from watchword.cli.main import app

DOC = Path(__file__).parents[2] / "docs" / "edge.md"
BLOCK = re.compile(r"<!-- edge-config: (?P<args>.+?) -->\n```[a-z]*\n(?P<text>.*?)```", re.S)
runner = CliRunner()


def _blocks() -> list[tuple[str, str]]:
    return [(m["args"], m["text"]) for m in BLOCK.finditer(DOC.read_text(encoding="utf-8"))]


def test_the_page_shows_every_proxy() -> None:
    shown = {shlex.split(args)[0] for args, _ in _blocks()}
    assert shown == {"nginx", "caddy", "traefik", "envoy", "ingress-nginx"}


@pytest.mark.parametrize(("args", "text"), _blocks(), ids=lambda v: v.split()[0][:14])
def test_each_configuration_is_what_the_cli_prints(
    args: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("WATCHWORD_HOST", "WATCHWORD_PORT", "WATCHWORD_EDGE__HEADERS__SUBJECT"):
        monkeypatch.delenv(name, raising=False)
    printed = runner.invoke(app, ["edge", "config", *shlex.split(args)])
    assert printed.exit_code == 0, printed.output
    assert printed.output == text
