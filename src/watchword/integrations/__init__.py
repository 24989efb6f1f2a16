"""watchword inside an application's own web framework (``docs/embedding.md``).

An integration authenticates a request (an API token, watchword's session cookie, or a
bearer JWT of an issuer the app trusts) into a :class:`Caller` and asks the policy engine
what that caller may do, in one of two modes behind one interface: **embedded** (watchword's
services in the app's process, on the app's database) or **remote** (a watchword server,
through :class:`watchword.client.AsyncClient`).

- :mod:`watchword.integrations.fastapi`: ``Guard``, its ``caller`` and ``require``
  dependencies (the only module here that imports FastAPI).

This package's own names need no web framework.
"""

from watchword.integrations._bearer import BearerIssuer
from watchword.integrations._caller import Caller, CallerKind

__all__ = ["BearerIssuer", "Caller", "CallerKind"]
