from __future__ import annotations

import watchword.rbac


def test_rbac_public_api_exports_exactly_all() -> None:
    public = {name for name in dir(watchword.rbac) if not name.startswith("_")}
    modules = {"acl", "claims", "errors", "subject"}  # submodules imported by the package
    assert public - modules == set(watchword.rbac.__all__)
