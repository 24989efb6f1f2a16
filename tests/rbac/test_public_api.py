from __future__ import annotations

import types

import watchword.rbac


def test_rbac_public_api_exports_exactly_all() -> None:
    # Submodules become package attributes once anything imports them; they are not API.
    public = {
        name
        for name, value in vars(watchword.rbac).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(watchword.rbac.__all__)


def test_rbac_unknown_role_reference_is_the_authz_unknown_role() -> None:
    # One code, one class: RBAC's old name for it stays importable.
    from watchword.authz import UnknownRole

    assert watchword.rbac.UnknownRoleReference is UnknownRole
    assert UnknownRole.code == "unknown_role"
