"""One writer per folder: an exclusive lock file *inside* the folder, naming the process that holds it.

A run folder (held by ``search``, ``search --resume`` and ``export``) and a device profile (held while
measuring into it) each take :func:`folder_lock`. The lock is an OS advisory lock (``filelock``), so it is
released when its process ends, even by ``kill -9``: a stale lock file never blocks anyone. Beside it,
``.hwnas.lock.owner`` records the holder's PID and host, so that the refused process can say who holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

LOCK_FILE = ".hwnas.lock"
OWNER_FILE = ".hwnas.lock.owner"


def _holder(folder: Path) -> str:
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
        return f" (PID {int(owner['pid'])} on {owner.get('host', '?')}, since {owner.get('since', '?')})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, *, what: str, error: type[Exception], timeout: float = 0.0,
                on_wait=None) -> Iterator[None]:
    """Holds the exclusive lock of ``folder`` (created if missing) for the ``with`` block.

    Args:
        folder: The folder to lock.
        what: What the folder is, for the message (``"run folder"``, ``"profile"``).
        error: Exception class raised when the lock is held elsewhere.
        timeout: Seconds to wait for the lock (0: fail at once).
        on_wait: Called with a message once if the lock is busy and ``timeout`` > 0 (before waiting).

    Raises:
        error: another process holds the lock (past ``timeout``); the message names its PID.
    """
    from filelock import FileLock, Timeout

    from hwnas.io import atomic_write_text

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder / LOCK_FILE), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            if timeout <= 0:
                raise
            if on_wait is not None:
                on_wait(f"{what} {folder} is in use by another hwnas process{_holder(folder)}; waiting up to "
                        f"{timeout:.0f} s")
            lock.acquire(timeout=timeout)
    except Timeout:
        raise error(f"{what} {folder} is in use by another hwnas process{_holder(folder)}; wait for it to "
                    f"finish (or stop it) and try again") from None
    except OSError as exc:
        raise error(f"cannot lock {what} {folder}: {exc.strerror or exc}") from None
    try:
        with contextlib.suppress(OSError):
            atomic_write_text(folder / OWNER_FILE, json.dumps({
                "pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
        yield
    finally:
        with contextlib.suppress(OSError):  # removed while still held: never another holder's record
            (folder / OWNER_FILE).unlink()
        lock.release()
