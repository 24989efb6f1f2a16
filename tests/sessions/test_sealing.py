"""Upstream tokens sealed at rest: AES-GCM under a named key, bound to the row and column."""

from __future__ import annotations

import pytest

from watchword.errors import ConfigurationError
from watchword.secret import Secret
from watchword.sessions.sealing import (
    SECRET_KEY_ID,
    SealedColumn,
    Sealer,
    UnsealError,
    derive_key,
    key_id_of,
)

OLD = ("old", derive_key("o" * 32))
NEW = ("new", derive_key("n" * 32))


def test_sealed_value_opens_only_for_its_row_and_column() -> None:
    sealer = Sealer([OLD])
    sealed = sealer.seal("refresh-123", session_id="ses_a", column=SealedColumn.REFRESH_TOKEN)
    assert b"refresh-123" not in sealed
    opened = sealer.open(sealed, session_id="ses_a", column=SealedColumn.REFRESH_TOKEN)
    assert opened.reveal() == "refresh-123"
    with pytest.raises(UnsealError):
        sealer.open(sealed, session_id="ses_b", column=SealedColumn.REFRESH_TOKEN)
    with pytest.raises(UnsealError):
        sealer.open(sealed, session_id="ses_a", column=SealedColumn.ACCESS_TOKEN)


def test_a_flipped_bit_anywhere_is_refused() -> None:
    sealer = Sealer([OLD])
    sealed = sealer.seal("x", session_id="s", column="c")
    for index in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[index] ^= 0x01
        with pytest.raises(UnsealError):
            sealer.open(bytes(tampered), session_id="s", column="c")


def test_rotation_first_key_seals_every_listed_key_opens() -> None:
    before = Sealer([OLD])
    sealed_old = before.seal("tok", session_id="s", column="c")
    during = Sealer([NEW, OLD])
    assert during.open(sealed_old, session_id="s", column="c").reveal() == "tok"
    resealed = during.reseal(sealed_old, session_id="s", column="c")
    assert key_id_of(resealed) == "new" and key_id_of(sealed_old) == "old"
    after = Sealer([NEW])
    assert after.open(resealed, session_id="s", column="c").reveal() == "tok"
    with pytest.raises(UnsealError, match="not configured"):
        after.open(sealed_old, session_id="s", column="c")
    # Already under the first key: unchanged (rotation can resume without re-encrypting).
    assert during.reseal(resealed, session_id="s", column="c") is resealed


def test_key_from_secret_key_matches_the_same_value_listed_as_a_key() -> None:
    derived = Sealer.from_settings([], "s" * 40)
    assert derived.primary_id == SECRET_KEY_ID
    sealed = derived.seal("t", session_id="s", column="c")
    moved = Sealer.from_settings(
        [("k2", Secret("k" * 32)), (SECRET_KEY_ID, Secret("s" * 40))], None
    )
    assert moved.open(sealed, session_id="s", column="c").reveal() == "t"


def test_no_key_at_all_is_a_configuration_error_and_repr_shows_no_key() -> None:
    with pytest.raises(ConfigurationError, match="WATCHWORD_SECRET_KEY"):
        Sealer.from_settings([], None)
    sealer = Sealer([OLD])
    assert "old" in repr(sealer) and repr(OLD[1]) not in repr(sealer)


def test_garbage_is_refused_without_crashing() -> None:
    sealer = Sealer([OLD])
    for junk in (b"", b"\x01", b"\x02\x03old", b"\x01\x03ol", b"\x01\x03\xff\xfe\xfd" + b"0" * 40):
        with pytest.raises(UnsealError):
            sealer.open(junk, session_id="s", column="c")
