"""Upstream OpenID Connect providers: discovery and keys (:class:`UpstreamProvider`), the
OAuth client (:class:`OidcClient`), JWT verification and the ``return_to`` rule."""

from watchword.errors import (
    IdTokenInvalid,
    LogoutTokenInvalid,
    ProviderUnavailable,
    ProviderUnknown,
    ReturnToRefused,
    SigninCodeRejected,
    SigninDenied,
    SigninStateInvalid,
)
from watchword.federation.client import OidcClient, TokenSet
from watchword.federation.provider import ProviderMetadata, UpstreamProvider
from watchword.federation.returnto import ReturnTo

__all__ = [
    "IdTokenInvalid",
    "LogoutTokenInvalid",
    "OidcClient",
    "ProviderMetadata",
    "ProviderUnavailable",
    "ProviderUnknown",
    "ReturnTo",
    "ReturnToRefused",
    "SigninCodeRejected",
    "SigninDenied",
    "SigninStateInvalid",
    "TokenSet",
    "UpstreamProvider",
]
