"""clusters: a small multi-tenant service protected by watchword (``README.md``).

Organizations (watchword's), and in them clusters, each with an owner (the app's own user
id) and per-user shares. The pieces, one module each:

- :mod:`.models`: the ORM table, and the one declaration of how watchword reads a row
  (:func:`~.models.cluster_objects`);
- :mod:`.routes`: the HTTP routes, each guarded by ``watchword.integrations.fastapi.Guard``
  (lists narrowed in SQL by ``guard.authorized``, in both modes);
- :mod:`.app`: the app factory, which picks the mode from :mod:`.config`;
- :mod:`.seed`: demo data in a watchword server (policy, organizations, members, tokens).

Imports inside the package are relative, so the directory can be copied out and renamed.
"""
