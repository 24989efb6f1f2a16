"""watchword at the edge: forward-auth for reverse proxies (nginx, Caddy, Traefik, Envoy).

- :mod:`.routes`: the route table (pure): which request needs what;
- :mod:`.original`: the original request, read from each proxy's conventions (pure);
- :mod:`.assertion`: signed identity assertions for apps, and their JWKS;
- :mod:`.service`: the decision, from credential to verdict and identity headers;
- :mod:`.proxyconf`: the proxy configurations docs/edge.md shows (pure text).
"""

from watchword.errors import NonCanonicalPath, NoOriginalRequest, UntrustedProxy

__all__ = ["NoOriginalRequest", "NonCanonicalPath", "UntrustedProxy"]
