"""The RBAC command groups (registered by ``watchword.cli.rbac``)."""
