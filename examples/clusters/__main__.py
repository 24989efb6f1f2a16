"""``python -m examples.clusters [PORT]``: serve the app with uvicorn (mode from the
environment, :mod:`.config`)."""

from __future__ import annotations

import sys

import uvicorn


def main(argv: list[str]) -> None:
    port = int(argv[0]) if argv else 8001
    uvicorn.run(f"{__package__}.app:create_app", factory=True, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main(sys.argv[1:])
