"""The device profile store: ``<profiles-dir>/<device>/device.json`` + ``measurements.jsonl``.

- ``device.json`` -- the fingerprint (:mod:`hwnas.profiling.fingerprint`), written once, atomically
  (temporary file + rename). It is rewritten (atomically) only when another latency table is imported.
- ``measurements.jsonl`` -- JSON Lines, one record per architecture (see :func:`make_record`), in the order
  measured. Each record is *appended* with one ``write`` followed by ``flush`` and ``fsync``, so a finished
  measurement survives Ctrl-C, a crash or a power cut. The one thing a crash can leave behind is a torn
  final line (no trailing newline, not valid JSON): readers ignore it with a warning and the next append cuts
  it off before writing. Any other unreadable line is corruption: a :class:`ProfileError` names the file and
  line, and nothing is written.
- a lock: an empty file in the system's temporary folder, named after the profile's absolute path, is locked
  (``flock``, where available) while a run appends, so that two runs cannot measure into one profile at once
  (they would disturb each other's timings). The profile folder itself holds only data.

Records are keyed by (space, space options, input shape, canonical architecture string): a profile holds one
measurement per key.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from hwnas.arch import Arch
from hwnas.io import atomic_write_json, check_name, finite_number
from hwnas.profiling.errors import MAX_LATENCY_MS, MIN_LATENCY_MS, ProfileError, latency_in_range
from hwnas.profiling.fingerprint import SCHEMA_VERSION, mismatches

logger = logging.getLogger(__name__)

DEVICE_FILE = "device.json"
MEASUREMENTS_FILE = "measurements.jsonl"
DEFAULT_PROFILES_DIR = "profiles"
REQUIRED_KEYS = ("space", "input_shape", "arch", "median_ms")


def _record_problem(record: Mapping[str, Any]) -> str | None:
    """What is wrong with a measurement record read from a profile (None when it is usable)."""
    median = record.get("median_ms")
    if not finite_number(median, positive=True):
        return f"has median_ms {repr(median)[:40]}, not a positive finite number"
    if not latency_in_range(median):
        return f"has median_ms {median!r}, outside {MIN_LATENCY_MS:g} .. {MAX_LATENCY_MS:g} ms"
    runs = record.get("runs")
    if runs is not None and not (isinstance(runs, int) and not isinstance(runs, bool) and runs >= 1):
        return f"has runs {repr(runs)[:40]}, not a whole number of at least 1"
    if not isinstance(record.get("arch"), str) or not isinstance(record.get("space"), str):
        return "has an arch or space that is not text"
    shape = record.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(d, int) and d > 0 for d in shape)):
        return f"has input_shape {shape!r}, not three positive whole numbers"
    return None


def validate_device_name(name: str) -> str:
    """Returns ``name`` if it is usable as a folder name on every OS; :class:`ProfileError` otherwise."""
    return check_name(name, what="device name", error=ProfileError)


def list_devices(root: str | os.PathLike) -> list[str]:
    """Names of the profiles under ``root`` (folders holding a ``device.json``)."""
    base = Path(root)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / DEVICE_FILE).is_file())


def normalize_space_options(space: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` without those equal to the space's defaults, sorted, so equal spaces get equal keys."""
    options = dict(options or {})
    if not options:
        return {}
    defaults: dict[str, Any] = {}
    try:
        from hwnas.spaces import SPACES

        factory = SPACES.get(space)
        defaults = {name: p.default for name, p in inspect.signature(factory).parameters.items()
                    if p.default is not inspect.Parameter.empty}
    except Exception:  # an unknown space keeps its options as given
        pass
    normal = json.loads(json.dumps(options, sort_keys=True, default=str))
    reference = json.loads(json.dumps(defaults, sort_keys=True, default=str))
    return {k: v for k, v in sorted(normal.items()) if not (k in reference and reference[k] == v)}


def record_key(space: str, arch: str, input_shape: Sequence[int],
               space_options: Mapping[str, Any] | None = None) -> tuple:
    """The identity of a measurement in a profile."""
    options = json.dumps(normalize_space_options(space, space_options), sort_keys=True)
    return (space, options, tuple(int(d) for d in input_shape), arch)


def _space_name(space: Any) -> str:
    return space if isinstance(space, str) else space.name


class ProfileStore:
    """One device profile on disk.

    Args:
        root: The profiles folder (``./profiles`` by default on the command line).
        device: The device name: the profile lives in ``root/device``.
    """

    def __init__(self, root: str | os.PathLike, device: str) -> None:
        self.root = Path(root)
        self.device = validate_device_name(device)
        self.path = self.root / device
        self._fingerprint: dict[str, Any] | None = None
        self._records: list[dict[str, Any]] | None = None
        self._keys: set[tuple] = set()
        self._torn_at: int | None = None  # byte offset of a torn final line
        self._needs_newline = False

    # -- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike, device: str) -> "ProfileStore":
        """An existing profile; :class:`ProfileError` naming the known ones if there is none."""
        store = cls(root, device)
        if not store.exists:
            known = ", ".join(list_devices(root)) or "none"
            raise ProfileError(f"no profile {device!r} under {store.root} (known: {known}); "
                               f"make one with 'hwnas profile --device {device} ...'")
        store.fingerprint  # noqa: B018 -- validates device.json now
        return store

    @property
    def device_file(self) -> Path:
        return self.path / DEVICE_FILE

    @property
    def measurements_file(self) -> Path:
        return self.path / MEASUREMENTS_FILE

    @property
    def exists(self) -> bool:
        return self.device_file.is_file()

    # -- fingerprint -----------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """The stored fingerprint, or None for a profile not created yet."""
        if self._fingerprint is None and self.exists:
            self._fingerprint = self._read_fingerprint()
        return self._fingerprint

    def _read_fingerprint(self) -> dict[str, Any]:
        path = self.device_file
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ProfileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); the profile is "
                               f"corrupt: fix or remove the file") from None
        except UnicodeDecodeError:
            raise ProfileError(f"{path}: not UTF-8 text; the profile is corrupt: fix or remove the "
                               f"file") from None
        except OSError as exc:
            raise ProfileError(f"cannot read {path}: {exc.strerror or exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("schema_version"), int):
            raise ProfileError(f"{path}: not a device fingerprint (no schema_version); the profile is "
                               f"corrupt")
        if data["schema_version"] > SCHEMA_VERSION:
            raise ProfileError(f"{path}: schema version {data['schema_version']} is newer than this hwnas "
                               f"understands ({SCHEMA_VERSION}); upgrade hwnas")
        return data

    def ensure(self, fingerprint: Mapping[str, Any]) -> None:
        """Creates the profile with ``fingerprint``, or checks that an existing one was made under the same
        measurement conditions.

        Raises:
            ProfileError: the stored conditions differ (the message lists them and says what to do), or the
                profile is corrupt.
        """
        stored = self.fingerprint
        if stored is None:
            if self.measurements_file.exists():
                raise ProfileError(f"{self.measurements_file} exists without {DEVICE_FILE}; the profile is "
                                   f"corrupt: restore {self.device_file} or remove {self.path}")
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                atomic_write_json(self.device_file, dict(fingerprint))
            except OSError as exc:
                raise ProfileError(f"cannot create profile {self.path}: {exc.strerror or exc}") from None
            self._fingerprint = dict(fingerprint)
            return
        diffs = mismatches(stored, fingerprint)
        if diffs:
            listed = "; ".join(f"{key}: {old!r} in the profile, {new!r} now" for key, old, new in diffs)
            raise ProfileError(f"profile {self.device!r} ({self.path}) was measured under other conditions "
                               f"({listed}); measurements are never mixed: use another --device name "
                               f"(e.g. --device {self.device}-2) or remove {self.path} to start over")
        if stored.get("source") == "table":
            tables = list(stored.get("tables") or [])
            new = [t for t in fingerprint.get("tables") or [] if t not in tables]
            if new:
                updated = {**stored, "tables": tables + new}
                atomic_write_json(self.device_file, updated)
                self._fingerprint = updated

    # -- measurements ----------------------------------------------------------------------------------------
    def _load(self) -> list[dict[str, Any]]:
        if self._records is not None:
            return self._records
        self.fingerprint  # noqa: B018 -- a corrupt device.json is reported first
        records: list[dict[str, Any]] = []
        path = self.measurements_file
        self._torn_at, self._needs_newline = None, False
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            raise ProfileError(f"cannot read {path}: {exc.strerror or exc}") from None
        lines = data.split(b"\n")
        offset = 0
        for number, raw in enumerate(lines, start=1):
            last = number == len(lines)
            start, offset = offset, offset + len(raw) + 1
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                if last:  # no newline after it: an append that was cut short
                    logger.warning("%s: ignoring an interrupted final line (%d bytes); the next append "
                                   "removes it", path, len(raw))
                    self._torn_at = start
                    break
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
                raise ProfileError(f"{path}: line {number} is not valid JSON ({reason}); the profile is "
                                   f"corrupt: fix or remove that line") from None
            missing = [k for k in REQUIRED_KEYS if not isinstance(record, dict) or k not in record]
            if missing:
                raise ProfileError(f"{path}: line {number} is not a measurement (missing "
                                   f"{', '.join(missing)}); the profile is corrupt: fix or remove that line")
            problem = _record_problem(record)
            if problem:
                raise ProfileError(f"{path}: line {number} {problem}; the profile is corrupt: fix or remove that "
                                   f"line")
            if last:
                self._needs_newline = True
            records.append(record)
        self._records = records
        self._keys = {self._key_of(r) for r in records}
        return records

    @staticmethod
    def _key_of(record: Mapping[str, Any]) -> tuple:
        return record_key(record["space"], record["arch"], record["input_shape"], record.get("space_options"))

    def records(self, space: Any = None, input_shape: Sequence[int] | None = None,
                space_options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The stored records, optionally only those of one space (with ``space_options``, defaults when None)
        and/or one input shape."""
        records = self._load()
        if space is not None:
            name = _space_name(space)
            options = normalize_space_options(name, space_options)
            records = [r for r in records if r["space"] == name
                       and normalize_space_options(name, r.get("space_options")) == options]
        if input_shape is not None:
            shape = [int(d) for d in input_shape]
            records = [r for r in records if [int(d) for d in r["input_shape"]] == shape]
        return list(records)

    def has(self, space: Any, arch: Arch | str, input_shape: Sequence[int],
            space_options: Mapping[str, Any] | None = None) -> bool:
        """Whether ``arch`` is already measured at ``input_shape``."""
        self._load()
        string = arch.string if isinstance(arch, Arch) else str(arch)
        return record_key(_space_name(space), string, input_shape, space_options) in self._keys

    def __len__(self) -> int:
        return len(self._load())

    def refresh(self) -> None:
        """Forgets the records read so far: the next access reads the file again (call it under
        :meth:`lock` to see what other processes appended)."""
        self._records = None

    def add(self, record: Mapping[str, Any]) -> bool:
        """Appends one record durably (see the module docstring); False if its key is already stored.

        Raises:
            ProfileError: the profile does not exist yet (call :meth:`ensure`), is corrupt, or cannot be
                written.
        """
        return self.add_many([record]) == 1

    def add_many(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Appends the records whose keys are not stored yet with one write and one ``fsync`` (a published
        table's 15,625 rows would otherwise take one ``fsync`` each); returns how many were added. A crash
        during the write leaves at most a torn final line, which readers ignore.

        Raises:
            ProfileError: as :meth:`add`.
        """
        if not self.exists:
            raise ProfileError(f"profile {self.path} has no {DEVICE_FILE}; create it first")
        for record in records:
            missing = [k for k in REQUIRED_KEYS if k not in record]
            if missing:
                raise ValueError(f"record lacks {', '.join(missing)}")
        self._load()
        fresh: dict[tuple, dict[str, Any]] = {}
        for record in records:
            key = self._key_of(record)
            if key not in self._keys and key not in fresh:
                fresh[key] = dict(record)
        if not fresh:
            return 0
        data = "".join(json.dumps(r, sort_keys=False, allow_nan=False) + "\n" for r in fresh.values())
        path = self.measurements_file
        try:
            if self._torn_at is not None:
                os.truncate(path, self._torn_at)
                self._torn_at = None
            with open(path, "ab") as handle:
                if self._needs_newline:
                    handle.write(b"\n")
                    self._needs_newline = False
                handle.write(data.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            self._records = None  # a part may be written: the next read finds the torn tail and cuts it off
            raise ProfileError(f"cannot append to {path}: {exc.strerror or exc}") from None
        assert self._records is not None
        self._records.extend(fresh.values())
        self._keys.update(fresh)
        return len(fresh)

    @contextlib.contextmanager
    def lock(self, *, timeout: float = 0.0, on_wait=None) -> Iterator[None]:
        """Holds the profile's exclusive lock (``.hwnas.lock`` inside its folder, which it creates);
        :class:`ProfileError` naming the holder's PID if another process holds it past ``timeout`` seconds."""
        from hwnas.locks import folder_lock

        with folder_lock(self.path, what=f"profile {self.device!r}", error=ProfileError, timeout=timeout,
                         on_wait=on_wait):
            yield
