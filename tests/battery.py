"""Shared checks of the bad-input batteries (``test_fault_battery.py`` and ``test_battery_*.py``, issues 15 and
34): one clear ``Error:`` line with the expected exit code, no traceback, and nothing changed outside the place a
command is allowed to write."""

from __future__ import annotations

import os
from pathlib import Path


def assert_one_clear_line(result, code: int, needle: str) -> None:
    """The command failed with exit ``code`` and exactly one ``Error:`` line on stderr holding ``needle``."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0], result.stderr


def assert_refused(cli, folder: str | os.PathLike, *args, code: int, needle: str,
                   allowed: tuple[str, ...] = ()):
    """Runs ``cli(*args)`` and asserts it is one clear line (:func:`assert_one_clear_line`) that leaves ``folder``
    unchanged outside ``allowed`` (:func:`assert_unchanged`); returns the result."""
    before = snapshot(folder)
    result = cli(*args)
    assert_one_clear_line(result, code, needle)
    assert_unchanged(before, snapshot(folder), allowed=allowed)
    return result


def snapshot(root: str | os.PathLike) -> dict[str, tuple]:
    """Every entry under ``root`` (symlinks not followed): its kind, size, modification time and mode."""
    found: dict[str, tuple] = {}
    root = Path(root)
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            found[str(path.relative_to(root))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def assert_unchanged(before: dict[str, tuple], after: dict[str, tuple], *, allowed: tuple[str, ...] = ()) -> None:
    """Nothing was added, removed or modified, except the paths in ``allowed`` (relative; one ending in ``/``:
    that folder and everything under it)."""
    def free(path: str) -> bool:
        return any(path == a.rstrip("/") or a.endswith("/") and path.startswith(a) for a in allowed)

    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p) and not free(p))
    assert not changed, f"changed outside the intended output: {changed[:10]}"
