"""HTTP routers of the RBAC administration API (composed in ``watchword.api.routes``)."""
