"""Release announcements between processes on one host, over Unix datagram sockets.

Every process that waits for a key of one SQLite database binds a socket in a private
directory named after that database file (``<tmp>/watchword-locks-<hash>/``, mode 0700,
short enough for the 108-byte socket path limit); a release sends the key to every
socket there. A socket left by a dead process refuses the datagram and is removed.

It is only a hint: a lost datagram (full buffer, a process that bound late) costs the
waiter its poll interval, never correctness, because every wake-up is followed by a
compare-and-swap. Where Unix sockets are missing, or the directory is not ours, the
doorbell stays silent and waiters poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import socket
import stat
import tempfile
from pathlib import Path

from watchword.locks.signal import SignalHub

__all__ = ["Doorbell"]


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, hub: SignalHub) -> None:
        self._hub = hub

    def datagram_received(self, data: bytes, addr: object) -> None:
        with contextlib.suppress(UnicodeDecodeError):
            self._hub.notify(data.decode())


class Doorbell:
    """Ring the other processes' waiters for a key; hear them ring ours."""

    __slots__ = ("_dir", "_hub", "_own", "_sender", "_start_lock", "_transport", "_usable")

    def __init__(self, database: str, hub: SignalHub) -> None:
        digest = hashlib.sha256(os.path.abspath(database).encode()).hexdigest()[:16]
        self._dir = Path(tempfile.gettempdir()) / f"watchword-locks-{digest}"
        self._hub = hub
        self._own: Path | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._sender: socket.socket | None = None
        self._start_lock = asyncio.Lock()
        self._usable: bool | None = None

    @property
    def directory(self) -> Path:
        """Where the processes' sockets live."""
        return self._dir

    @property
    def available(self) -> bool:
        return hasattr(socket, "AF_UNIX")

    def _usable_dir(self) -> bool:
        """Whether the directory is ours alone; decided once (in a sticky temp directory
        nobody else can remove or replace it after that)."""
        if self._usable is None:
            self._usable = self._check_dir()
        return self._usable

    def _check_dir(self) -> bool:
        try:
            self._dir.mkdir(mode=0o700, exist_ok=True)
            info = self._dir.lstat()
        except OSError:
            return False
        # Somebody else's directory could feed us or hide our sockets, and a symlink
        # planted under the predictable name would point ring() at any directory we can
        # write (where it unlinks what refuses a datagram): use only a real directory of
        # ours that nobody else may write.
        return (
            stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and info.st_mode & 0o077 == 0
        )

    async def listen(self) -> None:
        """Bind this process's socket (once) before its first attempt on a key."""
        if self._transport is not None or not self.available:
            return
        async with self._start_lock:
            if self._transport is not None or not self._usable_dir():
                return
            path = self._dir / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(str(path))
                sock.setblocking(False)
                loop = asyncio.get_running_loop()
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Receiver(self._hub), sock=sock
                )
            except OSError:
                sock.close()
                return
            self._own = path
            self._transport = transport

    def ring(self, key: str) -> None:
        """Tell every other listening process that ``key`` was released."""
        if not self.available or not self._usable_dir():
            return
        if self._sender is None:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        payload = key.encode()
        try:
            peers = list(os.scandir(self._dir))
        except OSError:
            return
        for entry in peers:
            if self._own is not None and entry.path == str(self._own):
                continue
            try:
                if not stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                    continue  # only sockets are rung, and only sockets are ever removed
            except OSError:
                continue
            try:
                self._sender.sendto(payload, entry.path)
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)  # left by a process that is gone
            except OSError:
                continue  # buffer full or not a socket: that waiter will poll

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._own is not None:
            with contextlib.suppress(OSError):
                self._own.unlink()
            self._own = None
        if self._sender is not None:
            self._sender.close()
            self._sender = None
