"""The client's shape: both clients have the same methods, every one is documented, every
error code maps to its class, and importing the client pulls in no server framework."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from watchword import errors
from watchword.client import CLASSES_BY_CODE, AsyncClient, Client

DOC = Path(__file__).parents[2] / "docs" / "client.md"
LIFECYCLE = {"close", "aclose"}


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_") and name not in LIFECYCLE
    }


def test_both_clients_have_the_same_methods_and_parameters() -> None:
    blocking, awaited = _methods(Client), _methods(AsyncClient)
    assert set(blocking) == set(awaited)
    for name, signature in blocking.items():
        assert list(signature.parameters) == list(awaited[name].parameters), name
        assert [p.default for p in signature.parameters.values()] == [
            p.default for p in awaited[name].parameters.values()
        ], name
    for name in awaited:
        member = getattr(AsyncClient, name)
        assert inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member), name


def test_every_method_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in _methods(Client) if f"{name}(" not in text]
    assert missing == []


def test_every_error_code_maps_to_its_own_class() -> None:
    classes = [getattr(errors, name) for name in errors.__all__]
    assert {cls.code: cls for cls in classes} == dict(CLASSES_BY_CODE)


def test_importing_the_client_imports_no_server_framework() -> None:
    probe = (
        "import sys, watchword.client; "
        "print(sorted(m for m in ('fastapi', 'starlette', 'sqlalchemy', 'pydantic', "
        "'uvicorn', 'watchword.api', 'watchword.services') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
