"""The integrations' public names, their documentation, and what importing them costs."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import watchword.integrations
import watchword.integrations.fastapi
from watchword.integrations.fastapi import Guard

DOC = Path(__file__).parents[2] / "docs" / "embedding.md"


def test_the_public_names_are_these() -> None:
    assert set(watchword.integrations.__all__) == {"BearerIssuer", "Caller", "CallerKind"}
    assert set(watchword.integrations.fastapi.__all__) == {
        "TYPE_LEVEL_ID",
        "BearerIssuer",
        "Caller",
        "CallerKind",
        "Guard",
    }


def test_every_public_member_of_the_guard_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    members = [
        name
        for name, member in vars(Guard).items()
        if not name.startswith("_") and (callable(member) or isinstance(member, classmethod))
    ]
    assert sorted(members) == [
        "aclose",
        "allowed",
        "authorized",
        "embedded",
        "install",
        "remote",
        "require",
        "validate",
    ]
    assert [name for name in [*members, "caller"] if f"{name}" not in text] == []
    for name in ("embedded", "remote", "require"):
        # The signature as the page shows it, in one code span holding every parameter.
        spans = re.findall(rf"`(?:Guard|guard)\.{name}\(([^`]*)\)`", text)
        parameters = set(inspect.signature(getattr(Guard, name)).parameters) - {"self"}
        assert any(all(re.search(rf"\b{p}\b", span) for p in parameters) for span in spans), name


def test_importing_the_package_imports_no_web_framework() -> None:
    probe = (
        "import sys, watchword.integrations; "
        "print(sorted(m for m in ('fastapi', 'starlette', 'watchword.api') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
