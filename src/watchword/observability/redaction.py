"""Keep secrets out of log lines.

Two nets: values under keys that name a secret are replaced, and strings that look like a
credential (watchword tokens, bearer headers, URL passwords, secret query or connection-string
parameters such as ``?password=…`` or ``api_key=…``) are masked wherever they occur. This is the one
rule for logs, ``config show``, ``repr(Settings)``, ``/readyz`` and error messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

from watchword.secret import REDACTED, Secret

__all__ = ["redact_event", "redact_text", "redact_value"]

_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|authorization|api[_-]?key|cookie|credential|private)",
    re.IGNORECASE,
)
# Rules: each pattern with what replaces a match.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # watchword tokens and bootstrap keys: ww<kind>_<body>
    (re.compile(r"\bww[a-z]{0,4}_[A-Za-z0-9]{20,}\b"), REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    # userinfo in URLs: scheme://user:password@host, the user possibly empty (redis://:pw@h)
    (re.compile(r"(?<=://)([^/\s:@]*):([^/\s@]+)@"), rf"\1:{REDACTED}@"),
    # secret parameters, in a query string (?password=…&sslmode=…, ?api_key=…) or a
    # key=value connection string (host=db password=…): the name ends with a secret word
    (
        re.compile(
            r"(?i)(?<![\w.-])([\w.-]*(?:pass(?:word|wd)?|pwd|secret|token|key|credentials?"
            r"|signature|auth|authorization))=(?!\*{10})[^&\s#;,'\"]+"
        ),
        rf"\1={REDACTED}",
    ),
)


# Every match of a pattern above contains one of these: one search rules out most strings
# (paths, ids, methods) without the four substitutions (a log line has many such values).
_TRIGGER = re.compile(r"ww[a-z]{0,4}_|bearer|basic|@|=", re.IGNORECASE)


def redact_text(text: str) -> str:
    if not _TRIGGER.search(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(key: str, value: Any) -> Any:
    if isinstance(value, Secret):
        return REDACTED
    if _SECRET_KEY.search(key) and value not in (None, "", 0, False):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, v) for v in value]
    return value


def redact_event(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """structlog processor: redact every field of the event dict."""
    for key in list(event):
        event[key] = redact_value(key, event[key])
    return event
