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
