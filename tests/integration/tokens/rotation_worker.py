"""One worker process of the multi-process rotation test (run as a script).

Arguments: a JSON object with ``db``, ``redis``, ``prefix``, ``secret_key``, ``now``
(ISO time for the FakeClock), ``subject``, ``tasks`` and ``start_at`` (a wall-clock
``time.time()`` to start at, so every process fires at once). Prints one JSON line: the
SHA-256 of the plaintext each task got, and the rotation counter by result.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime

from watchword.clock import FakeClock
from watchword.config import load_settings
from watchword.runtime import Runtime
from watchword.secret import sha256_hex
from watchword.services import Services
from watchword.tokens import Owner
from watchword.tokens.integration import rotate_integration


async def main(args: dict[str, object]) -> dict[str, object]:
    settings = load_settings(
        environ={},
        database_url=str(args["db"]),
        redis_url=str(args["redis"]),
        redis_prefix=str(args["prefix"]),
        secret_key=str(args["secret_key"]),
    )
    runtime = Runtime.create(settings, clock=FakeClock(datetime.fromisoformat(str(args["now"]))))
    services = Services.build(runtime)
    owner = Owner(settings.issuer_url, str(args["subject"]))
    try:
        await runtime.check_database()
        delay = float(str(args["start_at"])) - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks = int(str(args["tasks"]))
        results = await asyncio.gather(
            *(rotate_integration(services.integrations, owner) for _ in range(tasks))
        )
        counter = services.tokens.metrics.rotations
        counts = {
            result: counter.labels(result)._value.get()
            for result in ("cached", "cached_after_lock", "rotated")
        }
        return {"hashes": [sha256_hex(r.reveal()) for r in results], "counts": counts}
    finally:
        await runtime.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
