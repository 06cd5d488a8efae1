"""The evaluation store: every evaluation ever made, in one SQLite file, so nothing is trained twice.

A record is keyed by (space, canonical architecture, data set, recipe hash, seed, epochs, data fraction) —
the last two are the fidelity. The file uses write-ahead logging and a busy timeout, so several processes
can train and write at once; each record is written in one transaction, so a killed process never leaves a
half-written record (a run killed mid-training leaves none). When two processes store the same key, the
first write wins and both get that record back.

Default file: ``./evals.sqlite`` (``$HWNAS_STORE`` or ``--store PATH`` to change it).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

from hwnas import __version__
from hwnas.arch import Arch, arch_id
from hwnas.data.base import Dataset
from hwnas.errors import HwnasError
from hwnas.spaces.base import SearchSpace
from hwnas.training.evaluator import Evaluator, Trainer
from hwnas.training.recipe import DEFAULT_RECIPE, Recipe, format_fidelity
from hwnas.training.trainer import TrainResult

logger = logging.getLogger(__name__)

DEFAULT_STORE = "evals.sqlite"
STORE_ENV = "HWNAS_STORE"
SCHEMA_VERSION = 1

#: (path, size, mtime) of the stores whose quick_check passed in this process: checked once per file state
_CHECKED: set[tuple[str, int, int]] = set()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evals (
    space          TEXT    NOT NULL,
    arch           TEXT    NOT NULL,
    dataset        TEXT    NOT NULL,
    recipe_hash    TEXT    NOT NULL,
    seed           INTEGER NOT NULL,
    epochs         INTEGER NOT NULL,
    data_fraction  REAL    NOT NULL,
    arch_id        TEXT    NOT NULL,
    val_accuracy   REAL    NOT NULL CHECK (val_accuracy BETWEEN 0 AND 1),
    val_loss       REAL,
    train_loss     REAL,
    test_accuracy  REAL,
    params         INTEGER,
    wall_time_s    REAL    NOT NULL,
    threads        INTEGER,
    source         TEXT    NOT NULL,
    recipe         TEXT    NOT NULL,
    created_at     REAL    NOT NULL,
    hwnas_version  TEXT    NOT NULL,
    PRIMARY KEY (space, arch, dataset, recipe_hash, seed, epochs, data_fraction)
);
CREATE INDEX IF NOT EXISTS evals_by_dataset ON evals (dataset, space, recipe_hash);
"""


class StoreError(HwnasError):
    """The evaluation store cannot be opened or a record is invalid."""


def default_store_path() -> Path:
    """``$HWNAS_STORE`` when set, else ``./evals.sqlite``."""
    return Path(os.environ.get(STORE_ENV) or DEFAULT_STORE)


def space_key(space: SearchSpace) -> str:
    """The space's name, plus its constructor options where they differ from the defaults.

    ``nb201`` with ``channels=8`` is ``nb201[channels=8]``: a different model from plain ``nb201``.
    """
    def public(obj: Any) -> dict[str, Any]:
        return {k: v for k, v in vars(obj).items() if not k.startswith("_")}

    try:
        defaults = public(type(space)())
    except TypeError:  # a space without defaults: every option is part of its identity
        defaults = {}
    options = {k: v for k, v in sorted(public(space).items()) if defaults.get(k, object()) != v}
    if not options:
        return space.name
    return f"{space.name}[{','.join(f'{k}={v}'.replace(' ', '') for k, v in options.items())}]"


@dataclass(frozen=True)
class EvalKey:
    """What identifies an evaluation; ``(epochs, data_fraction)`` is its fidelity."""

    space: str
    arch: str
    dataset: str
    recipe_hash: str
    seed: int
    epochs: int
    data_fraction: float


KEY_FIELDS = tuple(f.name for f in fields(EvalKey))


def make_key(space: SearchSpace, arch: Arch, dataset: Dataset, *, recipe: Recipe = DEFAULT_RECIPE,
             seed: int = 0, evaluator: Evaluator | None = None) -> EvalKey:
    """The store key of evaluating ``arch`` with ``evaluator`` (training by default)."""
    recipe_hash, epochs, fraction = (evaluator or Trainer()).protocol_key(recipe)
    return EvalKey(space_key(space), arch.string, dataset.key, recipe_hash, int(seed), int(epochs),
                   float(fraction))


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class EvalRecord(EvalKey):
    """One stored evaluation: its key's fields, then the results; ``reused`` (not stored) says that
    :meth:`EvalStore.evaluate` trained nothing."""

    arch_id: str
    val_accuracy: float
    val_loss: float | None
    train_loss: float | None
    test_accuracy: float | None
    params: int | None
    wall_time_s: float
    threads: int | None
    source: str
    recipe: dict
    created_at: float
    hwnas_version: str
    reused: bool = field(default=False, compare=False)

    @property
    def key(self) -> EvalKey:
        return EvalKey(*(getattr(self, name) for name in KEY_FIELDS))

    @property
    def fidelity(self) -> str:
        if self.source in ("table", "supernet"):
            return self.source
        return format_fidelity(self.epochs, self.data_fraction)

    @property
    def created_iso(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.created_at))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (without ``reused``), with ``fidelity`` and ``created`` added."""
        data = asdict(self)
        data.pop("reused")
        data["fidelity"] = self.fidelity
        data["created"] = self.created_iso
        return data

    @classmethod
    def from_result(cls, key: EvalKey, result: TrainResult, *, protocol: dict[str, Any]) -> "EvalRecord":
        """A record of ``result`` under ``key``, stamped with the time and hwnas version."""
        return cls(**asdict(key), arch_id=arch_id(key.space.split("[")[0], key.arch),
                   val_accuracy=float(result.val_accuracy), val_loss=_finite_or_none(result.val_loss),
                   train_loss=_finite_or_none(result.train_loss),
                   test_accuracy=_finite_or_none(result.test_accuracy),
                   params=None if result.params is None else int(result.params),
                   wall_time_s=float(result.wall_time_s), threads=result.threads, source=result.source,
                   recipe=dict(protocol), created_at=time.time(), hwnas_version=__version__)


_COLUMNS = [f.name for f in fields(EvalRecord) if f.name != "reused"]


class EvalStore:
    """The SQLite store of evaluations.

    Args:
        path: The database file (created with its schema when missing); ``None`` for
            :func:`default_store_path`.
        timeout: Seconds a writer waits for another process's write lock before giving up.

    Raises:
        StoreError: the folder is missing, the file is not an hwnas store, or it was written by a newer hwnas.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, timeout: float = 60.0) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.timeout = float(timeout)
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._connection()  # fail early on a bad path or file

    # -- connection ------------------------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():  # a forked child opens its own connection
            self._conn = self._open()
            self._pid = os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise StoreError(f"{self.path}: folder {parent} does not exist")
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder, not an evaluation store file")
        if self.path.exists() and not self.path.is_file():  # SQLite would write its journal beside a device
            raise StoreError(f"{self.path}: is a device, FIFO or socket, not an evaluation store file")
        existed = self.path.is_file() and self.path.stat().st_size > 0
        try:
            conn = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            if existed:  # read before anything is written: a foreign, newer or corrupt file is left as it is
                self._check_existing(conn)
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            if not (existed and self._schema_current(conn)):
                self._create_schema(conn)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable evaluation store ({exc})") from None
        return conn

    def _check_existing(self, conn: sqlite3.Connection) -> None:
        """Refuses (writing nothing) a store of a newer hwnas, another SQLite file, or a corrupt one:
        ``PRAGMA quick_check`` once per file state and process (about 1 ms per thousand records)."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: written by a newer hwnas (store schema {version}; this "
                             f"version reads {SCHEMA_VERSION})")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if version == 0 and tables - {"evals"}:
            raise StoreError(f"{self.path}: an SQLite file that is not an hwnas evaluation store")
        info = self.path.stat()
        state = (str(self.path.resolve()), info.st_size, info.st_mtime_ns)
        if state in _CHECKED:
            return
        try:
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(100)").fetchall()]
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
        # a row breaking a CHECK or NOT NULL (an edited store) is the rows' check's to skip, not a corrupt file
        problems = [p for p in problems if p != "ok" and not str(p).startswith(("CHECK constraint", "NULL value"))]
        if problems:
            conn.close()
            first = " ".join(line for line in str(problems[0]).splitlines() if not line.startswith("***"))[:100]
            raise StoreError(f"{self.path}: the evaluation store is corrupt ({first}); nothing was changed: "
                             f"move it aside and start a new one (sqlite3's .recover may save its records)")
        _CHECKED.add(state)

    @staticmethod
    def _schema_current(conn: sqlite3.Connection) -> bool:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        return version == SCHEMA_VERSION and {"evals", "evals_by_dataset"} <= names

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if version == 0 and tables - {"evals"}:
                raise StoreError(f"{self.path}: an SQLite file that is not an hwnas evaluation store")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def __enter__(self) -> "EvalStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- records ---------------------------------------------------------------------------------------------
    def _store_error(self, exc: sqlite3.DatabaseError, doing: str = "") -> StoreError:
        """One line for a failed statement: a busy or read-only store, or a corrupt one (never a traceback)."""
        if isinstance(exc, sqlite3.OperationalError):
            return StoreError(f"{self.path}: {doing}{exc}")
        return StoreError(f"{self.path}: the evaluation store is corrupt ({exc}); move it aside and start a new "
                          f"one (sqlite3's .recover may save its records)")

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Every row of a query, read inside the error handling (a corrupt page can fail while fetching)."""
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._store_error(exc) from None

    def _row_to_record(self, row: tuple) -> EvalRecord:
        data = dict(zip(_COLUMNS, row))
        problem = _row_problem(data)
        if problem is None:
            try:
                data["recipe"] = json.loads(data["recipe"])
                if not isinstance(data["recipe"], dict):
                    problem = "recipe is not a JSON object"
            except (TypeError, ValueError):
                problem = "recipe is not JSON"
        if problem is not None:
            raise StoreError(f"{self.path}: the record of {str(data.get('arch'))[:80]!r} is invalid ({problem}); "
                             f"delete it or move the store aside")
        return EvalRecord(**data)

    def _valid_records(self, rows: list[tuple]) -> list[EvalRecord]:
        """The records of ``rows``; invalid ones (an edited or old store) skipped with one warning."""
        records: list[EvalRecord] = []
        skipped: list[str] = []
        for row in rows:
            try:
                records.append(self._row_to_record(row))
            except StoreError as exc:
                skipped.append(str(exc))
        if skipped:
            logger.warning("%s: skipping %d invalid record(s); the first: %s", self.path, len(skipped),
                           skipped[0].split(": ", 1)[-1])
        return records

    def get(self, key: EvalKey) -> EvalRecord | None:
        """The stored record of ``key``, or None."""
        where = " AND ".join(f"{name} = ?" for name in KEY_FIELDS)
        rows = self._rows(f"SELECT {', '.join(_COLUMNS)} FROM evals WHERE {where}",
                          tuple(getattr(key, n) for n in KEY_FIELDS))
        return self._row_to_record(rows[0]) if rows else None

    def put(self, record: EvalRecord) -> bool:
        """Stores ``record`` in one transaction. Returns False (and changes nothing) if its key exists."""
        if not (isinstance(record.val_accuracy, float) and 0.0 <= record.val_accuracy <= 1.0):
            raise StoreError(f"val_accuracy must be in [0, 1], got {record.val_accuracy!r}")
        values = [getattr(record, name) for name in _COLUMNS]
        values[_COLUMNS.index("recipe")] = json.dumps(record.recipe, sort_keys=True)
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(f"INSERT OR IGNORE INTO evals ({', '.join(_COLUMNS)}) "
                                      f"VALUES ({', '.join('?' * len(_COLUMNS))})", tuple(values))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise self._store_error(exc, "cannot store the evaluation: ") from None
        return cursor.rowcount == 1

    def query(self, *, space: str | None = None, arch: str | None = None, dataset: str | None = None,
              recipe_hash: str | None = None, seed: int | None = None, epochs: int | None = None,
              data_fraction: float | None = None, source: str | None = None,
              min_accuracy: float | None = None, order_by: str = "created_at", descending: bool = False,
              limit: int | None = None) -> list[EvalRecord]:
        """Stored records matching every given filter (None matches anything).

        Args:
            space, arch, dataset, recipe_hash, seed, epochs, data_fraction, source: Exact matches. ``space``
                also matches the space with options (``nb201`` matches ``nb201[channels=8]``) and
                ``recipe_hash`` any prefix of the hash.
            min_accuracy: Only records with at least this validation accuracy.
            order_by: A column name (``created_at``, ``val_accuracy``, ``wall_time_s``, ``params``, ...).
            descending: Sort from high to low.
            limit: At most this many records.
        """
        if order_by not in _COLUMNS:
            raise StoreError(f"cannot sort by {order_by!r}; choose one of {', '.join(_COLUMNS)}")
        clauses: list[str] = []
        params: list[Any] = []
        for name, value in (("arch", arch), ("dataset", dataset), ("seed", seed), ("epochs", epochs),
                            ("data_fraction", data_fraction), ("source", source)):
            if value is not None:
                clauses.append(f"{name} = ?")
                params.append(value)
        if space is not None:
            clauses.append("(space = ? OR space LIKE ? ESCAPE '\\')")
            params += [space, _like_prefix(space) + "[%"]
        if recipe_hash is not None:
            clauses.append("recipe_hash LIKE ? ESCAPE '\\'")
            params.append(_like_prefix(recipe_hash) + "%")
        if min_accuracy is not None:
            clauses.append("val_accuracy >= ?")
            params.append(float(min_accuracy))
        sql = f"SELECT {', '.join(_COLUMNS)} FROM evals"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY {order_by} {'DESC' if descending else 'ASC'}, rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._valid_records(self._rows(sql, tuple(params)))

    def __len__(self) -> int:
        return int(self._rows("SELECT COUNT(*) FROM evals")[0][0])

    # -- evaluate-or-reuse -----------------------------------------------------------------------------------
    def evaluate(self, space: SearchSpace, arch: Arch | str, dataset: Dataset, *,
                 recipe: Recipe = DEFAULT_RECIPE, seed: int = 0,
                 trainer: Evaluator | Callable[..., TrainResult] | None = None) -> EvalRecord:
        """The stored evaluation of ``arch`` if there is one (``reused=True``), else evaluates and stores it.

        Args:
            space: The search space.
            arch: An architecture of ``space`` (or a string it parses).
            dataset: The data set.
            recipe: The training recipe, with its fidelity.
            seed: The training seed.
            trainer: An :class:`Evaluator` (a :class:`Trainer` by default; a
                :class:`~hwnas.training.table.TableEvaluator` for a table), or a function called like
                :func:`~hwnas.training.trainer.train`.
        """
        evaluator = as_evaluator(trainer)
        if isinstance(arch, str):
            arch = space.parse(arch)
        stored = self.lookup(space, arch, dataset, recipe=recipe, seed=seed, trainer=evaluator)
        if stored is not None:
            return stored
        result = evaluator(space, arch, dataset, recipe=recipe, seed=seed)
        return self.record(space, arch, dataset, result, recipe=recipe, seed=seed, trainer=evaluator)

    def lookup(self, space: SearchSpace, arch: Arch, dataset: Dataset, *, recipe: Recipe = DEFAULT_RECIPE,
               seed: int = 0, trainer: Evaluator | None = None) -> EvalRecord | None:
        """The stored evaluation of ``arch`` (``reused=True``), or None: the first half of :meth:`evaluate`,
        for a caller that runs the evaluation elsewhere (a Ray task) and stores it with :meth:`record`."""
        evaluator = as_evaluator(trainer)
        stored = self.get(make_key(space, arch, dataset, recipe=recipe, seed=seed, evaluator=evaluator))
        if stored is None:
            return None
        logger.debug("reusing the stored evaluation of %s", arch.string)
        return replace(stored, reused=True)

    def record(self, space: SearchSpace, arch: Arch, dataset: Dataset, result: TrainResult, *,
               recipe: Recipe = DEFAULT_RECIPE, seed: int = 0, trainer: Evaluator | None = None) -> EvalRecord:
        """Stores ``result``, the evaluation of ``arch`` (the second half of :meth:`evaluate`); returns the
        record (another process's, if it stored the same key meanwhile)."""
        evaluator = as_evaluator(trainer)
        key = make_key(space, arch, dataset, recipe=recipe, seed=seed, evaluator=evaluator)
        record = EvalRecord.from_result(key, result, protocol=evaluator.protocol(recipe))
        if not self.put(record):  # another process stored the same key meanwhile: theirs is the record
            logger.info("%s was stored by another process meanwhile; keeping that record", arch.string)
            record = self.get(key) or record
        return record


def as_evaluator(trainer: Evaluator | Callable[..., TrainResult] | None) -> Evaluator:
    """An :class:`Evaluator` for ``trainer``: itself, a default :class:`Trainer`, or a wrapped function."""
    if trainer is None:
        return Trainer()
    if isinstance(trainer, Evaluator):
        return trainer
    if callable(trainer):
        return Trainer(train_fn=trainer, report_test=False)
    raise TypeError(f"trainer must be an Evaluator or a function, got {type(trainer).__name__}")


_TEXT = ("space", "arch", "dataset", "recipe_hash", "arch_id", "source", "recipe", "hwnas_version")
_WHOLE = ("seed", "epochs")
_WHOLE_OR_NONE = ("params", "threads")
_NUMBER_OR_NONE = ("val_loss", "train_loss", "test_accuracy")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _row_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a stored row (text where a number belongs, an accuracy outside [0, 1], ...), or None:
    the schema's CHECK holds only for tables made since it exists, and a store can be edited."""
    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    for name in _TEXT:
        if not isinstance(data.get(name), str):
            return f"{name} is not text"
    for name in _WHOLE:
        if not (isinstance(data.get(name), int) and data[name] >= 0):
            return f"{name} {_short(data.get(name))} is not a whole number of at least 0"
    for name in _WHOLE_OR_NONE:
        if data.get(name) is not None and not (isinstance(data[name], int) and data[name] >= 0):
            return f"{name} {_short(data.get(name))} is not a whole number of at least 0"
    for name in _NUMBER_OR_NONE:
        if data.get(name) is not None and not number(data[name]):
            return f"{name} {_short(data.get(name))} is not a number"
    if not (number(data.get("val_accuracy")) and 0.0 <= data["val_accuracy"] <= 1.0):
        return f"val_accuracy {_short(data.get('val_accuracy'))} is not a fraction in [0, 1]"
    if data.get("test_accuracy") is not None and not 0.0 <= data["test_accuracy"] <= 1.0:
        return f"test_accuracy {_short(data.get('test_accuracy'))} is not a fraction in [0, 1]"
    if not (number(data.get("data_fraction")) and 0.0 < data["data_fraction"] <= 1.0):
        return f"data_fraction {_short(data.get('data_fraction'))} is not in (0, 1]"
    for name in ("wall_time_s", "created_at"):
        if not (number(data.get(name)) and data[name] >= 0):
            return f"{name} {_short(data.get(name))} is not a number of at least 0"
    return None


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
