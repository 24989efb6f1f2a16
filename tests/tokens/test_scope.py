from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchword.errors import InvalidInput
from watchword.tokens.scope import Permission, covers, name_covered, normalize_scopes


@pytest.mark.parametrize(
    ("held", "requested", "expected"),
    [
        ({"projects:read"}, "projects:read", True),
        ({"projects:read"}, "projects:write", False),
        ({"projects:*"}, "projects:write", True),
        ({"projects:*"}, "projects:*", True),
        ({"*:read"}, "projects:read", True),
        ({"*:read"}, "projects:*", False),
        ({"*:read"}, "*:*", False),
        ({"*:*"}, "*:*", True),
        ({"compute:clusters:read"}, "compute:clusters:*", False),
        ({"compute:clusters:*"}, "compute:clusters:delete", True),
        (set(), "projects:read", False),
    ],
)
def test_name_covered_table(held: set[str], requested: str, expected: bool) -> None:
    assert name_covered(frozenset(held), requested) is expected


def test_covers_needs_names_and_permission() -> None:
    held = frozenset({"projects:*"})
    assert covers(held, Permission.READ_WRITE, frozenset({"projects:read"}), Permission.READ_ONLY)
    assert not covers(
        held, Permission.READ_ONLY, frozenset({"projects:read"}), Permission.READ_WRITE
    )
    assert not covers(held, Permission.READ_WRITE, frozenset({"orgs:read"}), Permission.READ_ONLY)


names = st.from_regex(r"[a-z]{1,5}(:[a-z]{1,5})?:([a-z]{1,5}|\*)", fullmatch=True)


@given(st.frozensets(names, max_size=6))
def test_covers_every_set_covers_itself_and_its_subsets(held: frozenset[str]) -> None:
    assert covers(held, Permission.READ_ONLY, held, Permission.READ_ONLY)
    for name in held:
        assert name_covered(held, name)


@pytest.mark.parametrize("bad", ["projects", "Projects:read", "a:b c", ":read", "projects:"])
def test_normalize_scopes_bad_name_is_invalid_with_pointer(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalize_scopes([bad])
    assert info.value.pointer == "/scopes"


def test_normalize_scopes_too_many_is_invalid() -> None:
    with pytest.raises(InvalidInput):
        normalize_scopes([f"r{i}:read" for i in range(101)])


def test_effective_scopes_read_only_keeps_only_read_only_actions() -> None:
    from watchword.tokens.scope import effective_scopes

    names = frozenset({"compute:clusters:*", "compute:clusters:delete", "watchword:acl:read"})
    ro = effective_scopes(names, Permission.READ_ONLY)
    assert ro == frozenset(
        {"compute:clusters:read", "compute:clusters:check", "watchword:acl:read"}
    )
    assert effective_scopes(names, Permission.READ_WRITE) == names
