"""API tokens: checksummed format, hashed at rest, cached verification, rotation, janitor.

Public API::

    services = Services.build(runtime)                     # watchword.services
    service = services.tokens
    issued = await service.create(NewToken(kind=TokenKind.PERSONAL, name="ci", owner=owner,
                                           scopes=frozenset({"projects:read"})))
    record = await service.verify(Secret(plaintext))      # zero SQL on a cache hit
    plaintext = await rotate_integration(services.integrations, owner)   # seed 001
    report = await services.janitor.run(dry_run=True)

Pure rules live in :mod:`watchword.tokens.format` and :mod:`watchword.tokens.rotation`.
"""

from __future__ import annotations

from watchword.tokens.format import SCANNER_REGEX, TokenKind, looks_like_token, parse
from watchword.tokens.model import Owner, TokenRecord, TokenState
from watchword.tokens.scope import Permission
from watchword.tokens.service import IssuedToken, NewToken, TokenPage, TokenService

__all__ = [
    "SCANNER_REGEX",
    "IssuedToken",
    "NewToken",
    "Owner",
    "Permission",
    "TokenKind",
    "TokenPage",
    "TokenRecord",
    "TokenService",
    "TokenState",
    "looks_like_token",
    "parse",
]
