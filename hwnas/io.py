"""Atomic file writes: write a temporary file in the target's folder, fsync it, then rename over the target.

A reader never sees a half-written file, and a crash mid-write leaves the previous version intact. The final
file's mode follows the umask (``0666 & ~umask``, as ``open()`` would make it), not ``mkstemp``'s private 0600,
so that a teammate can read a shared run folder.

Output paths are checked before any work (:func:`check_output_file`, :func:`check_output_folder`): never a
device, a FIFO, a symbolic link (unless ``--force``), a file of an hwnas folder or a command's own input; and an
atomic write never renames over a non-regular file (:func:`refuse_special`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it is renamed to ``path``, else deleted.

    Args:
        path: Final destination.
        suffix: Suffix of the temporary file (some writers look at the extension).
    """
    target = Path(path)
    refuse_special(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp_path, file_mode())
        refuse_special(target)  # made while this one was written
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


# -- output paths ------------------------------------------------------------------------------------------------

#: The folders hwnas makes, each known by the marker its own code already reads, and the names it owns inside
#: them (an output option never writes one of those: ``export RUN -o RUN/state.json`` would end the run).
#: Kept in step with hwnas/search/rundir.py, hwnas/search/benchmark.py, hwnas/supernet/folder.py and
#: hwnas/profiling/store.py by tests/test_battery_outputs.py.
LOCK_NAMES = (".hwnas.lock", ".hwnas.lock.owner")
OWNED_NAMES: dict[str, tuple[str, ...]] = {
    "run folder": ("config.json", "state.json", "history.csv", "controller.ckpt", "predictors", "verified.csv",
                   "result.json", "pareto.png", "search.log", "supernet", "mlflow.json", *LOCK_NAMES),
    "benchmark folder": ("benchmark.json", "curves.csv", "curves.json", "summary.json", "curves.png",
                         "latency_prior.json", "evals.sqlite", "runs", *LOCK_NAMES),
    "supernet folder": ("meta.json", "checkpoint.pt", "weights.pt", *LOCK_NAMES),
    "profile": ("device.json", "measurements.jsonl", *LOCK_NAMES),
}


def _json_keys(path: Path) -> set[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return set()
    return set(data) if isinstance(data, dict) else set()


def folder_kind(folder: str | os.PathLike) -> str | None:
    """Which hwnas folder ``folder`` is, by the marker its code reads: a run folder (a ``config.json`` with a
    run's space, data set and budget), a benchmark folder (``benchmark.json`` or its ``latency_prior.json``), a
    supernet folder (``meta.json``) or a profile (``device.json``); None for any other folder."""
    base = Path(folder)
    if (base / "config.json").is_file() and {"space", "dataset", "budget_ms"} <= _json_keys(base / "config.json"):
        return "run folder"
    if (base / "benchmark.json").is_file() or (base / "latency_prior.json").is_file():
        return "benchmark folder"
    if (base / "meta.json").is_file():  # as SupernetFolder.exists (its reader says what is wrong with it)
        return "supernet folder"
    if (base / "device.json").is_file():
        return "profile"
    return None


def _kind_of_entry(path: Path) -> str | None:
    """The hwnas folder ``path`` belongs to, as one of its own files or folders (at any depth), else None."""
    for folder in path.parents:
        kind = folder_kind(folder)
        if kind is not None and path.relative_to(folder).parts[0] in OWNED_NAMES[kind]:
            return f"{kind} {folder}"
    return None


def _special(info: os.stat_result) -> str | None:
    """What a non-regular file is (``"a device"``, ``"a FIFO"``, ...), None for a regular file."""
    import stat

    mode = info.st_mode
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def _check_parent(target: Path, error: type[Exception], what: str, *, new_folder: bool = True) -> None:
    """The folder of ``target`` exists, or can be made (``new_folder``): its nearest existing ancestor is a
    writable folder."""
    folder = target.parent
    if not new_folder and not folder.is_dir():
        raise error(f"cannot write {what} {target}: {folder} is not an existing folder")
    existing = next((p for p in [folder, *folder.parents] if os.path.lexists(p)), Path("."))
    if not existing.is_dir():
        raise error(f"cannot write {what} {target}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise error(f"cannot write {what} {target}: {existing} is not writable")


def check_output_file(path: str | os.PathLike, *, force: bool = False, inputs: Sequence[str | os.PathLike] = (),
                      what: str = "output", error: type[Exception] | None = None, new_folder: bool = True) -> Path:
    """Checks, before any work, that a command may write the file ``path``; returns the path to write.

    Allowed: a regular file, or a new name in an existing or creatable folder. Refused: a device, a FIFO, a
    socket or a folder (nothing allows these: an atomic write would replace the device node itself); a symbolic
    link unless ``force`` (then its final target is checked and returned, so the write goes through it); a file
    or folder owned by an hwnas folder (a run folder's ``state.json``, a profile's ``device.json``, ...,
    :data:`OWNED_NAMES`); one of the command's own ``inputs``. Nothing is created.

    Args:
        path: The output file.
        force: Write through a symbolic link (``--force``).
        inputs: The files (or folders) the command reads; the output may be none of them.
        what: What the file is, for the message (``"ONNX file"``, ``"report"``).
        error: Exception class to raise [default: :class:`~hwnas.errors.HwnasError`].
        new_folder: Whether the file's folder may be missing (made by the command); else it must exist.

    Raises:
        error: the path may not be written (one line naming it and why).
    """
    from hwnas.errors import HwnasError

    fail = error or HwnasError
    target = Path(path)
    if not str(path).strip():
        raise fail(f"the {what} path is empty")
    if target.is_symlink():
        if not force:
            raise fail(f"cannot write {what} {target}: it is a symbolic link (to {os.readlink(target)}); give the "
                       f"real path, or --force to write through it")
        target = Path(os.path.realpath(target))
    if os.path.lexists(target):
        kind = _special(os.stat(target))
        if kind is not None:
            raise fail(f"cannot write {what} {target}: it is {kind}, not a regular file; give a file name")
    _check_parent(target, fail, what, new_folder=new_folder)
    real = Path(os.path.realpath(target))
    owner = _kind_of_entry(real)
    if owner is not None:
        raise fail(f"cannot write {what} {target}: it belongs to the {owner}; write it elsewhere")
    for source in inputs:
        source_path = Path(source)
        if os.path.lexists(source_path) and os.path.realpath(source_path) == str(real):
            raise fail(f"cannot write {what} {target}: it is one of this command's inputs ({source_path}); give "
                       f"another name")
    return target


def check_output_folder(path: str | os.PathLike, *, kinds: Sequence[str], what: str,
                        error: type[Exception] | None = None) -> Path:
    """Checks, before any work, that a command may write into the folder ``path``: a new folder (its nearest
    existing ancestor a writable folder), an empty one, or an hwnas folder of one of ``kinds`` (keys of
    :data:`OWNED_NAMES`: the command's own kind, to resume it). A non-empty folder that is no hwnas folder (no
    marker, see :func:`folder_kind`), or anything that is not a folder, is refused. Nothing is created.

    Raises:
        error: the folder may not be written (one line naming it and why).
    """
    from hwnas.errors import HwnasError

    fail = error or HwnasError
    folder = Path(path)
    if not str(path).strip():
        raise fail(f"the {what} path is empty")
    if not os.path.lexists(folder):
        _check_parent(folder, fail, what)
        return folder
    if not folder.is_dir():
        kind = _special(os.stat(folder)) if folder.exists() else "a broken symbolic link"
        raise fail(f"{what} {folder} is {kind or 'a file'}, not a folder")
    found = folder_kind(folder)
    if found in kinds:
        return folder
    if found is not None:
        raise fail(f"{what} {folder} is a {found}, not a {' or '.join(kinds)}: give another folder")
    if any(entry.name not in LOCK_NAMES for entry in folder.iterdir()):
        raise fail(f"{what} {folder} is a non-empty folder that is not a {' or '.join(kinds)} of hwnas: give a "
                   f"new or empty folder")
    return folder


def refuse_special(target: str | os.PathLike) -> None:
    """Last line of defence of every atomic write: an existing ``target`` that is not a regular file (a
    device, a FIFO, a folder) is never renamed over; a symbolic link is (the link is replaced, never what it
    points at).

    Raises:
        HwnasError: ``target`` is a device, FIFO, socket or folder.
    """
    from hwnas.errors import HwnasError

    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return
    import stat

    if stat.S_ISLNK(info.st_mode):
        return
    kind = _special(info)
    if kind is not None:
        raise HwnasError(f"cannot write {target}: it is {kind}, not a regular file")
