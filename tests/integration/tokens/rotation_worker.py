"""One worker process of the multi-process rotation test (run as a script).

Arguments: a JSON object with ``db``, ``redis`` (``null``: no Redis), ``prefix``,
``secret_key``, ``now`` (ISO time for the FakeClock), ``subject``, ``tasks`` and ``start_at``
(a wall-clock ``time.time()`` to start at, so every process fires at once). Prints one JSON
line: the SHA-256 of the plaintext each task got, and the rotation counter by result.

With ``"serve": true`` the process lives on, keeping its caches, and runs one round per
line read from stdin (a JSON object with ``now`` and ``start_at``), printing one JSON line
per round (counters cumulative), until stdin closes.
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
        redis_url=str(args["redis"]) if args.get("redis") else None,
        redis_prefix=str(args["prefix"]),
        secret_key=str(args["secret_key"]),
    )
    clock = FakeClock(datetime.fromisoformat(str(args["now"])))
    runtime = Runtime.create(settings, clock=clock)
    services = Services.build(runtime)
    owner = Owner(settings.issuer_url, str(args["subject"]))
    tasks = int(str(args["tasks"]))

    async def round_at(start_at: float) -> dict[str, object]:
        delay = start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        results = await asyncio.gather(
            *(rotate_integration(services.integrations, owner) for _ in range(tasks))
        )
        counter = services.tokens.metrics.rotations
        counts = {
            result: counter.labels(result)._value.get()
            for result in ("cached", "cached_after_lock", "rotated")
        }
        return {"hashes": [sha256_hex(r.reveal()) for r in results], "counts": counts}

    try:
        await runtime.check_database()
        if not args.get("serve"):
            return await round_at(float(str(args["start_at"])))
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            clock.set(datetime.fromisoformat(str(command["now"])))
            print(json.dumps(await round_at(float(command["start_at"]))), flush=True)
        return {"done": True}
    finally:
        await services.aclose()
        await runtime.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
