"""Atomic file writes: write a temporary file in the target's folder, fsync it, then rename over the target.

A reader never sees a half-written file, and a crash mid-write leaves the previous version intact. The final
file's mode follows the umask (``0666 & ~umask``, as ``open()`` would make it), not ``mkstemp``'s private 0600,
so that a teammate can read a shared run folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it is renamed to ``path``, else deleted.

    Args:
        path: Final destination.
        suffix: Suffix of the temporary file (some writers look at the extension).
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp_path, file_mode())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask: ``0o666 & ~umask``."""
    return 0o666 & ~_umask()


def folder_mode() -> int:
    """The mode ``mkdir()`` gives a new folder under the current umask: ``0o777 & ~umask``."""
    return 0o777 & ~_umask()


def _umask() -> int:
    current = os.umask(0o022)  # the only way to read the umask; set straight back
    os.umask(current)
    return current


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, compact: bool = False) -> None:
    """Writes ``obj`` as JSON (sorted keys), indented for people to read, or ``compact`` for state a program
    rewrites often: the standard library's C encoder serves only unindented JSON, ~10x faster on a long
    run's state."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":")) if compact else json.dumps(obj, indent=2,
                                                                                         sort_keys=True)
    atomic_write_text(path, text + "\n")


def read_json_object(path: str | os.PathLike, *, error: type[Exception], what: str) -> dict:
    """The JSON object in ``path``; ``error`` with one clear line (naming the file) if it is missing or corrupt.

    Args:
        path: The file.
        error: Exception class to raise (a :class:`~hwnas.errors.HwnasError` subclass).
        what: What the file is, for the message ("search state", "predictor metadata", ...).
    """
    target = Path(path)
    if not target.is_file():
        raise error(f"{target} not found (no {what})")
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise error(f"{target} is corrupt ({what}): {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{target} is corrupt ({what}): not a JSON object")
    return data


def parse_key_values(pairs) -> dict[str, Any]:
    """``["channels=8", "lr=0.02", "optimizer=sgd"]`` -> ``{"channels": 8, "lr": 0.02, "optimizer": "sgd"}``.

    Values become int, else float, a JSON list when written as one (``widths=[[16,24],[32,48]]``), else stay
    text; dashes in keys become underscores.

    Raises:
        ValueError: an item is not ``KEY=VALUE``.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = str(pair).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{pair!r} is not KEY=VALUE")
        value: Any = raw
        if raw.strip().startswith("["):
            try:
                value = json.loads(raw)
            except ValueError:
                raise ValueError(f"{pair!r}: {raw!r} is not a JSON list") from None
            options[key.strip().replace("-", "_")] = value
            continue
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
        options[key.strip().replace("-", "_")] = value
    return options


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(name: str, *, what: str, error: type[Exception]) -> str:
    """Returns ``name`` if it is one safe folder or file name on every OS (1-64 letters, digits, ``.``, ``_`` or
    ``-``, starting with a letter or digit: never a path, ``..`` or an absolute path); raises ``error``
    otherwise."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise error(f"{what} {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or "
                    f"digit (one folder name, not a path)")
    return name


def finite_number(value: Any, *, positive: bool = False) -> bool:
    """Whether ``value`` read from a file is a finite int or float (not a bool, text or NaN), > 0 if
    ``positive``."""
    import math

    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return ok and (value > 0 if positive else True)
