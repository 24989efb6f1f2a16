from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import re
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import watchword
from watchword import errors
from watchword.api import problem

# Modules the walk must not import, each with the reason. Each is still read (as source) and
# must define no class at all, so an error class cannot hide in one.
NOT_IMPORTED = {
    "watchword.storage.migrations.env": "Alembic's env script runs migrations when imported",
}

# One line of the drawing: tree prefix, class name, code, then notes ("[rbac: Alias]", "(…)").
_DRAWN_LINE = re.compile(
    r"^(?P<prefix>(?:│   |    )*(?:├── |└── )?)(?P<name>[A-Z]\w*) +(?P<code>[a-z][a-z_]*)"
    r"(?: +\[(?P<exports>[^\]]+)\])?(?: +\(.*\))?$"
)


def _raise(name: str) -> None:
    raise ImportError(f"cannot walk into {name}")


def _every_module() -> Iterator[pkgutil.ModuleInfo]:
    # onerror: walk_packages otherwise skips a package that fails to import, silently.
    yield from pkgutil.walk_packages(watchword.__path__, "watchword.", onerror=_raise)


def _import_every_module() -> list[types.ModuleType]:
    modules = []
    for info in _every_module():
        if info.name not in NOT_IMPORTED:
            modules.append(importlib.import_module(info.name))
    return modules


def _all_error_classes() -> list[type[errors.WatchwordError]]:
    """Every subclass of WatchwordError in every module of the package, recursively."""
    _import_every_module()
    seen: list[type[errors.WatchwordError]] = []
    stack: list[type[errors.WatchwordError]] = [errors.WatchwordError]
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return [c for c in seen if c.__module__.startswith("watchword.")]


def _drawn_tree() -> dict[str, tuple[str, str | None, tuple[str, ...]]]:
    """The drawing in ``watchword.errors.__doc__``: name -> (code, parent, re-exports)."""
    doc = errors.__doc__ or ""
    block = doc.split("::\n", 1)[1].lstrip("\n").split("\n\n", 1)[0]
    drawn: dict[str, tuple[str, str | None, tuple[str, ...]]] = {}
    parents: list[str] = []
    for raw in block.splitlines():
        line = raw.removeprefix("    ")
        match = _DRAWN_LINE.match(line)
        assert match, f"cannot read drawn line {raw!r}"
        depth = len(match["prefix"]) // 4
        name = match["name"]
        assert name not in drawn, f"{name} drawn twice"
        del parents[depth:]
        exports = tuple(e.strip() for e in (match["exports"] or "").split(",") if e.strip())
        drawn[name] = (match["code"], parents[-1] if parents else None, exports)
        parents.append(name)
    return drawn


def test_errors_walk_imports_every_module_but_the_named_ones() -> None:
    names = {info.name for info in _every_module()}
    assert set(NOT_IMPORTED) <= names, "a skipped module no longer exists"
    for name in NOT_IMPORTED:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        assert not any(isinstance(node, ast.ClassDef) for node in ast.walk(tree)), name
    assert len(_import_every_module()) == len(names) - len(NOT_IMPORTED)


def test_errors_every_class_is_defined_in_watchword_errors() -> None:
    misplaced = [
        f"{c.__module__}.{c.__qualname__}"
        for c in _all_error_classes()
        if c.__module__ != "watchword.errors"
    ]
    assert misplaced == []


def test_errors_every_class_has_unique_snake_case_code() -> None:
    by_code: dict[str, list[str]] = {}
    for cls in _all_error_classes():
        by_code.setdefault(cls.code, []).append(f"{cls.__module__}.{cls.__qualname__}")
    assert {code: owners for code, owners in by_code.items() if len(owners) > 1} == {}
    assert all(re.fullmatch(r"[a-z][a-z_]*", code) for code in by_code)


def test_errors_every_class_is_exported() -> None:
    names = {c.__name__ for c in _all_error_classes()}
    assert names == set(errors.__all__)


def test_errors_docstring_tree_draws_every_class_with_its_code_and_parent() -> None:
    classes = _all_error_classes()
    assert len({c.__name__ for c in classes}) == len(classes), "two classes share a name"
    actual = {
        c.__name__: (c.code, None if c is errors.WatchwordError else c.__bases__[0].__name__)
        for c in classes
    }
    drawn = {name: (code, parent) for name, (code, parent, _) in _drawn_tree().items()}
    assert drawn == actual


def test_errors_docstring_tree_names_every_package_that_reexports_a_class() -> None:
    drawn = _drawn_tree()
    for name, (_, _, exports) in drawn.items():
        cls = getattr(errors, name)
        for export in exports:
            package, _, alias = export.partition(":")
            module = importlib.import_module(f"watchword.{package.strip()}")
            public = alias.strip() or name
            assert public in module.__all__ and getattr(module, public) is cls, (name, export)
    listed = {
        (f"watchword.{export.partition(':')[0].strip()}", name)
        for name, (_, _, exports) in drawn.items()
        for export in exports
    }
    for module in _import_every_module():
        if not hasattr(module, "__path__") or module is watchword:
            continue  # only packages re-export; their modules are not the public face
        for public in getattr(module, "__all__", ()):
            value = getattr(module, public)
            if isinstance(value, type) and issubclass(value, errors.WatchwordError):
                assert (module.__name__, value.__name__) in listed, (module.__name__, public)


def test_errors_every_class_maps_to_an_http_status() -> None:
    table = problem._STATUS
    for cls in _all_error_classes():
        if cls is errors.WatchwordError:
            continue  # the root is "internal": status_for's 500 fallback
        assert any(base in table for base in cls.__mro__), cls
    assert problem.status_for(errors.WatchwordError()) == 500


def test_errors_detail_defaults_to_title_and_pointer_kept() -> None:
    exc = errors.InvalidInput(pointer="/roles/0/name")
    assert exc.detail == "Invalid request"
    assert exc.pointer == "/roles/0/name"
    assert "invalid_request" in repr(exc)


def test_lock_timeout_names_the_key() -> None:
    exc = errors.LockTimeout("refresh:abc", 1.5)
    assert "refresh:abc" in exc.detail and exc.code == "lock_timeout"
    with pytest.raises(errors.WatchwordError):
        raise exc
