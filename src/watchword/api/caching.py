"""Cache directives for responses that carry a secret.

A response holding a plaintext credential must not be kept by any cache on the way:
``Cache-Control: no-store`` (RFC 9111 §5.2.2.5), and ``Pragma: no-cache`` for HTTP/1.0
caches, as RFC 6749 §5.1 asks of token responses.
"""

from __future__ import annotations

from typing import Final

from fastapi import Depends, Response

__all__ = ["NO_STORE", "NO_STORE_HEADERS", "no_store"]

NO_STORE_HEADERS: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


async def no_store(response: Response) -> None:
    """A route dependency: the response is never stored by a cache."""
    response.headers.update(NO_STORE_HEADERS)


NO_STORE = Depends(no_store)
