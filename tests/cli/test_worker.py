"""`watchword worker`: the background jobs without HTTP, as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ENTRY = "from watchword.cli.main import main; main()"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHWORD_")}
    env.update(
        WATCHWORD_ENV="development",
        WATCHWORD_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'worker.sqlite3'}",
    )
    return env


def test_worker_runs_the_janitor_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "worker"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    janitor_ran = False
    try:
        for line in proc.stderr:  # ends if the process dies: then the asserts below say why
            seen.append(line)
            if line.startswith("{") and json.loads(line).get("event") == "token_janitor_done":
                janitor_ran = True
                break
        assert janitor_ran, "".join(seen)
        # Without Redis there is no revocation fan-out to listen to: the janitor runs alone.
        assert any("worker: running token_janitor" in s for s in seen), "".join(seen)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(seen) + rest
    assert "watchword worker: stopped" in rest


def test_worker_refuses_a_bad_setting_with_exit_2(tmp_path: Path) -> None:
    env = _env(tmp_path) | {"WATCHWORD_DATABSE_URL": "x"}
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "WATCHWORD_DATABSE_URL" in done.stderr and "did you mean" in done.stderr
