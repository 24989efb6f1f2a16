from __future__ import annotations

import pickle

import pytest

from watchword.secret import REDACTED, Secret, constant_time_equal, sha256_hex


def test_secret_never_shows_in_str_repr_or_format() -> None:
    s = Secret("hunter2-very-secret")
    for shown in (str(s), repr(s), f"{s}", f"{s!r}", f"{s}"):
        assert "hunter2" not in shown
        assert REDACTED in shown
    assert s.reveal() == "hunter2-very-secret"


def test_secret_in_exception_message_is_redacted() -> None:
    s = Secret("abc123")
    with pytest.raises(ValueError, match=r"\*\*\*") as info:
        raise ValueError(f"bad secret {s}")
    assert "abc123" not in str(info.value)


def test_secret_equality_and_pickle_refusal() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    with pytest.raises(TypeError):
        pickle.dumps(Secret("a"))


def test_sha256_and_constant_time_equal() -> None:
    assert sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert constant_time_equal("x", "x") and not constant_time_equal("x", "y")
