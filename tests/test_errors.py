from __future__ import annotations

import re

import pytest

from watchword import errors


def _all_error_classes() -> list[type[errors.WatchwordError]]:
    seen: list[type[errors.WatchwordError]] = []
    stack: list[type[errors.WatchwordError]] = [errors.WatchwordError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return [c for c in seen if c.__module__ == "watchword.errors"]


def test_errors_every_class_has_unique_snake_case_code() -> None:
    classes = _all_error_classes()
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), codes
    assert all(re.fullmatch(r"[a-z][a-z_]*", c) for c in codes)


def test_errors_every_public_class_is_exported() -> None:
    names = {c.__name__ for c in _all_error_classes()}
    assert names == set(errors.__all__)


def test_errors_docstring_tree_lists_every_code() -> None:
    doc = errors.__doc__ or ""
    for cls in _all_error_classes():
        assert cls.__name__ in doc and cls.code in doc, cls


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
