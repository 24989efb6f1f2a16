"""Signed-in sessions: a record per sign-in through an upstream provider, its upstream tokens
sealed at rest, the cookie as a credential (:class:`SessionAuthenticator`), sign-in, sign-out
and back-channel logout (:class:`SigninService`)."""

from watchword.errors import SessionInvalid
from watchword.sessions.model import SessionRecord
from watchword.sessions.sealing import Sealer
from watchword.sessions.service import (
    EndedSession,
    NewSession,
    SessionAuthenticator,
    SessionFilter,
    SessionService,
)
from watchword.sessions.signin import SigninService

__all__ = [
    "EndedSession",
    "NewSession",
    "Sealer",
    "SessionAuthenticator",
    "SessionFilter",
    "SessionInvalid",
    "SessionRecord",
    "SessionService",
    "SigninService",
]
