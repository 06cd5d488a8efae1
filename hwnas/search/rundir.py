"""The run directory ``runs/<name>/``: config, state, history, checkpoints, predictor snapshots, results.

::

    config.json          what was asked: a RunConfig (space, data set, device, budget, controller, reward, seed,
                         ...), versioned (schema 2; schema-1 files of earlier runs still open)
    state.json           what has been done (verified architectures, pending candidates, round, time used)
    history.csv          one row per round: trainings used, best verified accuracy under budget, predictor
                         quality on the round's new truth
    controller.ckpt      the controller's checkpoint at the end of its last learning phase (data only, see
                         :meth:`~hwnas.search.controllers.base.Controller.load`)
    predictors/round_NNN/{accuracy,latency}/   the predictors fit at the start of round NNN
    verified.csv         every verified architecture: accuracy, measured latency, predictions
    result.json          the answer, the Pareto front, and why the search stopped
    pareto.png           accuracy vs measured latency of the verified architectures, with the budget line
                         and the chosen model (a star), in the unit the command line prints
    search.log           the log

Every file is written atomically (temporary file + rename). A process killed with ``kill -9`` can leave such a
temporary file (``.<name>.<random>.tmp``) or a predictor's staging folder behind; the next ``search --resume``
removes them while it holds the folder's lock (nothing else can be writing them then).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from hwnas.errors import HwnasError
from hwnas.io import atomic_write_json, atomic_write_text, check_output_folder, finite_number, read_json_object
from hwnas.search.config import ConfigError, RunConfig
from hwnas.search.state import Measured, SearchState, Verified

if TYPE_CHECKING:
    from hwnas.search.result import SearchResult, Trial

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
STATE_FILE = "state.json"


class RunDirError(HwnasError):
    """A run directory is missing, corrupt or belongs to another search."""


def lock_run_folder(path: str | os.PathLike):
    """The exclusive lock of a run folder (``.hwnas.lock`` inside it), held by ``search``, ``--resume`` and
    ``export``; :class:`RunDirError` naming the holder's PID when another process holds it."""
    from hwnas.locks import folder_lock

    return folder_lock(path, what="run folder", error=RunDirError)


class RunDir:
    """Files of one search run.

    Args:
        path: The run's folder.
        config: The run's configuration (loaded from ``config.json`` by :meth:`open`).
    """

    def __init__(self, path: str | os.PathLike, config: RunConfig) -> None:
        self.path = Path(path)
        self.config = config

    @classmethod
    def create(cls, path: str | os.PathLike, config: RunConfig) -> "RunDir":
        """Starts a new run in ``path`` (which must not hold one already) with a resolved ``config``
        (:meth:`RunConfig.resolved`)."""
        folder = check_run_folder(path)
        if config.input_shape is None or config.num_classes is None:
            raise RunDirError("a run starts from a resolved configuration (RunConfig.resolved())")
        if config.accuracy_function is None:  # the store it reads, recorded as an absolute path: a resume from
            from hwnas.training.store import default_store_path  # another folder finds it, never a new one there

            config = config.replace(store=str(Path(config.store or default_store_path()).expanduser().resolve()))
        _check_tables(config)  # read (and cached) before the folder is made: a bad table leaves nothing behind
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create run directory {folder}: {exc.strerror or exc}") from None
        # A folder holding only the configuration of a start that failed before any work (a bad table, an
        # unknown device...) is started afresh; one whose run is starting in another process is refused.
        with lock_run_folder(folder):
            if (folder / CONFIG_FILE).exists() and _progressed(folder):
                raise RunDirError(f"{folder} already holds a run; resume it with --resume {folder} or pick "
                                  f"another --run-dir")
            atomic_write_json(folder / CONFIG_FILE, config.to_json())
        return cls(folder, config)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunDir":
        """Opens an existing run (to resume, export or inspect it)."""
        folder = Path(path)
        if not folder.is_dir():
            raise RunDirError(f"run directory {folder} does not exist")
        data = _read_json(folder / CONFIG_FILE, what="run configuration")
        try:
            config = RunConfig.from_json(data)
        except ConfigError as exc:
            raise RunDirError(f"{folder / CONFIG_FILE} is corrupt: {exc}") from None
        return cls(folder, config)

    def check_resumable(self) -> SearchState | None:
        """Everything a resume checks before it writes or builds anything (``hwnas search --resume``,
        :func:`hwnas.resume_search`): the state (accuracies fractions), the controller checkpoint and the
        recorded store and profile (:meth:`check_recorded_paths`); returns the state.

        Raises:
            HwnasError: any of them is missing or corrupt (one line naming the file).
        """
        state = self.load_state(resuming=True)
        self.check_checkpoint()
        self.check_recorded_paths(state)
        return state

    def check_recorded_paths(self, state: SearchState | None = None) -> None:
        """Before a run that has progressed resumes: the evaluation store (``store``) and the device profile
        (``profiles_dir``) its ``config.json`` records exist. A resume never starts a fresh one wherever the
        record points (an edited ``config.json``, or a resume from another working folder: relative paths
        are the working folder's, as when the run started); it is one line naming the path instead.
        ``state``: the run's state where the caller has just read it (else it is read here)."""
        if state is None:
            if not self.has_progress() or not (self.path / STATE_FILE).is_file():
                return
            state = self.load_state()
        if state is None:
            return
        config = self.config
        trained = bool(state.verified or state.finals)  # before its first training a store may not exist yet
        if trained and config.store is not None and config.accuracy_function is None \
                and not Path(config.store).is_file():
            raise RunDirError(f"the run's evaluation store {config.store} (recorded in {self.path / CONFIG_FILE}) "
                              f"does not exist in {Path.cwd()}: a resume never starts a fresh one; resume from "
                              f"the folder the run started in, or restore the store")
        if config.latency_table is None and any(m.measured for m in state.measured):
            from hwnas.devices import profile_name
            from hwnas.profiling.store import ProfileStore

            profile = ProfileStore(config.profiles_dir, profile_name(config.device, config.runtime))
            if not profile.exists:
                raise RunDirError(f"the run's device profile {profile.path} (profiles_dir in "
                                  f"{self.path / CONFIG_FILE}) does not exist in {Path.cwd()}: a resume never "
                                  f"starts a fresh one; resume from the folder the run started in, or restore it")

    def update_config(self, **changes: Any) -> None:
        """Applies ``changes`` (a resume's longer budgets) to the configuration and writes it back atomically."""
        try:
            self.config = self.config.replace(**changes)
        except ConfigError as exc:
            raise RunDirError(str(exc)) from None
        atomic_write_json(self.path / CONFIG_FILE, self.config.to_json())

    def has_progress(self) -> bool:
        """Whether the run has done anything (a state, a result, a history, a checkpoint, predictor snapshots
        or its own supernet)."""
        return _progressed(self.path)

    def lock(self):
        """The run folder's exclusive lock (see :func:`lock_run_folder`)."""
        return lock_run_folder(self.path)

    def remove_stale_temporaries(self) -> list[Path]:
        """Removes what interrupted atomic writes left (call with the lock held); returns what it removed."""
        stale = [p for p in self.path.rglob(".*.tmp") if p.is_file()]
        stale += [p for p in (self.path / "predictors").glob("round_*/.*") if p.is_dir()]
        for path in stale:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return stale

    # -- paths -----------------------------------------------------------------------------------------------
    @property
    def controller_checkpoint(self) -> Path:
        return self.path / "controller.ckpt"

    @property
    def log_file(self) -> Path:
        return self.path / "search.log"

    @property
    def result_file(self) -> Path:
        return self.path / "result.json"

    def predictor_snapshot(self, round_index: int) -> Path:
        folder = self.path / "predictors" / f"round_{round_index:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def check_checkpoint(self) -> None:
        """Refuses a corrupt controller checkpoint before a resume writes anything (``CheckpointError``)."""
        if self.controller_checkpoint.exists():
            from hwnas.search.controllers.base import read_checkpoint

            read_checkpoint(self.controller_checkpoint)

    # -- state -----------------------------------------------------------------------------------------------
    def load_state(self, *, resuming: bool = False) -> SearchState | None:
        """The run's state (None: not started), every field checked (:func:`_check_state`; ``resuming``: its
        accuracies must be fractions too).

        Raises:
            RunDirError: a missing or tampered ``state.json`` (one line naming the file and the field).
        """
        path = self.path / STATE_FILE
        if not path.exists():
            if self.has_progress():
                raise RunDirError(f"{path} is missing although the run has progressed: it cannot resume exactly "
                                  f"(nothing was changed); start a new run with another --run-dir")
            return None
        data = _read_json(path, what="search state")
        _check_state(path, data, resuming=resuming)
        known = {f.name for f in fields(SearchState)}
        state = SearchState(**{k: v for k, v in data.items() if k in known})
        state.verified = [_record(Verified, entry) for entry in state.verified]
        state.measured = [_record(Measured, entry) for entry in state.measured]
        return state

    def save_state(self, state: SearchState) -> None:
        # a shallow view (the records hold plain values): asdict's deep copy of a long run's state costs more
        # than the write
        data = {f.name: getattr(state, f.name) for f in fields(state)}
        data["verified"] = [dict(vars(v)) for v in state.verified]
        data["measured"] = [dict(vars(m)) for m in state.measured]
        atomic_write_json(self.path / STATE_FILE, data, compact=True)

    # -- outputs ---------------------------------------------------------------------------------------------
    def history(self) -> list[dict[str, str]]:
        path = self.path / "history.csv"
        if not path.exists():
            return []
        try:
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                rows = list(reader)
                columns = reader.fieldnames or []
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise RunDirError(f"{path} cannot be read: {getattr(exc, 'strerror', None) or type(exc).__name__}") \
                from None
        if "round" not in columns:
            raise RunDirError(f"{path} is corrupt: it has no 'round' column")
        for line, row in enumerate(rows, start=2):
            value = row.get("round") or ""
            if not (value.isdigit() and int(value) <= MAX_ROUNDS) or None in row:
                raise RunDirError(f"{path} is corrupt: line {line} has round {_short(value)} or extra fields")
        return rows

    def append_history(self, row: Mapping[str, Any]) -> None:
        """Adds a round's row (replacing a row of the same round left by an interrupted session)."""
        rows = [r for r in self.history() if r.get("round") != str(row["round"])]
        rows.append({k: "" if v is None else v for k, v in row.items()})
        atomic_write_text(self.path / "history.csv", _csv(rows, list(row.keys())))

    def write_result(self, result: "SearchResult") -> None:
        """Writes ``verified.csv`` (one row per trial) and ``pareto.png``, then ``result.json`` (last: a run whose
        ``result.json`` exists has all three)."""
        from dataclasses import asdict

        from hwnas.search.pareto import plot_pareto
        from hwnas.search.result import TRIAL_COLUMNS

        rows = [t.row() for t in result.trials]
        if rows:
            atomic_write_text(self.path / "verified.csv", _csv(rows, list(TRIAL_COLUMNS)))
        plot_pareto(rows, self.path / "pareto.png", budget_ms=result.budget_ms,
                    chosen=None if result.best is None else asdict(result.best),
                    title=f"{self.config.space} on {self.config.dataset_name or self.config.dataset}, "
                          f"device {self.config.device}")
        atomic_write_json(self.result_file, result.to_document())

    def progress(self) -> "tuple[SearchResult | None, list[Trial]]":
        """The run's result where it is current, and its trials so far: while a resumed search runs (or after
        it was interrupted) its ``result.json`` is the previous session's, so the result is None then and the
        trials come from ``state.json`` (with the previous finals' spreads).

        Raises:
            RunDirError: a corrupt state or result (one line naming the file).
        """
        from hwnas.search.result import trials_from_records

        state = self.load_state()
        result = self.load_result() if self.result_file.exists() else None
        if state is None:
            return result, list(result.trials) if result is not None else []
        if result is not None and state.finished and len(result.trials) == len(state.verified):
            return result, list(result.trials)
        return None, trials_from_records(state.verified, result.finalists if result is not None else ())

    def load_result(self) -> "SearchResult":
        """The run's result (:class:`~hwnas.search.result.SearchResult`); a result written before trials were
        recorded takes them from ``state.json``.

        Raises:
            RunDirError: no result yet, or a corrupt one (one line naming the file).
        """
        from hwnas.search.result import ResultError, SearchResult, trials_from_records

        if not self.result_file.exists():
            raise RunDirError(f"{self.path} has no result yet: the search has not finished (resume it)")
        document = self.read_result()
        try:
            trials = None
            if "trials" not in document and (self.path / STATE_FILE).is_file():
                state = self.load_state()
                trials = trials_from_records(state.verified) if state is not None else None
            result = SearchResult.from_document(self.path, document, trials=trials)
            if trials is not None:  # the document gains them too: result["trials"], --json
                if result.finalists:
                    trials = trials_from_records(state.verified, result.finalists)
                document = {**document, "trials": [t.row() for t in trials]}
                result = SearchResult.from_document(self.path, document)
            return result
        except ResultError as exc:
            raise RunDirError(f"{self.result_file} is corrupt: {exc}") from None

    def read_result(self) -> dict:
        return _read_json(self.result_file, what="search result")


def _csv(rows: Sequence[Mapping[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _read_json(path: Path, *, what: str) -> dict:
    return read_json_object(path, error=RunDirError, what=f"{what}: not a hwnas run directory?")


def _record(cls, entry: Mapping[str, Any]):
    """A state record from its JSON (keys of a newer hwnas ignored)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in entry.items() if k in names})


def _check_tables(config: RunConfig) -> None:
    """Reads a new run's latency and accuracy tables (parsed once per process: the run's sources reuse them)."""
    if config.latency_table is None and config.accuracy_table is None:
        return
    from hwnas.search.sources.tables import TableLatency, accuracy_table

    space = config.create_space()
    if config.latency_table is not None:
        TableLatency(config.latency_table, space)
    if config.accuracy_table is not None:
        accuracy_table(config.accuracy_table, space)


def check_run_folder(path: str | os.PathLike) -> Path:
    """Checks, before any work, that a new run may be made in ``path``: a new or empty folder, or a run folder
    (one that holds a run is refused by :meth:`RunDir.create`); never a non-empty folder that is no run of
    hwnas's, a file or a device (:func:`hwnas.io.check_output_folder`)."""
    return check_output_folder(path, kinds=("run folder",), what="run folder", error=RunDirError)


def _progressed(folder: Path) -> bool:
    return any((folder / name).exists() for name in (STATE_FILE, "result.json", "history.csv", "controller.ckpt",
                                                     "predictors", "supernet"))


#: The most rounds a run can have made (a state saying more was edited).
MAX_ROUNDS = 1_000_000


def _whole(value: Any, least: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= 10**12


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _unit(value: Any) -> bool:
    return finite_number(value) and 0.0 <= value <= 1.0


def _at_least_zero(value: Any) -> bool:
    return finite_number(value) and value >= 0


def _optional(check):
    return lambda value: value is None or check(value)


def _positive(value: Any) -> bool:
    return finite_number(value, positive=True)


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _list_of(check):
    return lambda value: isinstance(value, list) and all(check(v) for v in value)


def _round(value: Any) -> bool:
    return _whole(value) and value <= MAX_ROUNDS


#: state.json's fields: (check, what it must be). An accuracy is any finite number on reading (old runs made from
#: percentage tables still open) and a fraction in [0, 1] on resuming (see ``_check_state``).
_STATE_FIELDS: dict[str, tuple[Any, str]] = {
    "round": (_round, f"a whole number between 0 and {MAX_ROUNDS}"),
    "verified": (lambda v: isinstance(v, list), "a list"),
    "measured": (lambda v: isinstance(v, list), "a list"),
    "pending": (_list_of(_text), "a list of architectures"),
    "pending_group": (_list_of(_whole), "a list of whole numbers >= 0"),
    "slots": (_list_of(_whole), "a list of whole numbers >= 0"),
    "pending_predictions": (lambda v: isinstance(v, dict) and all(
        isinstance(p, list) and all(x is None or finite_number(x) for x in p) for p in v.values()),
        "a map of architectures to lists of numbers"),
    "training": (lambda v: isinstance(v, list) and all(
        isinstance(t, dict) and _text(t.get("arch")) and _positive(t.get("latency_ms")) for t in v),
        "a list of {arch, latency_ms > 0}"),
    "round_start": (_list_of(_whole), "a list of whole numbers >= 0"),
    "learned_round": (_round, f"a whole number between 0 and {MAX_ROUNDS}"),
    "estimated": (lambda v: isinstance(v, dict) and all(finite_number(x) for x in v.values()),
                  "a map of architectures to numeric accuracies"),
    "latency_fit": (_list_of(_whole), "a list of whole numbers >= 0"),
    "refilled_round": (lambda v: _whole(v, -1) and v <= MAX_ROUNDS, "a whole number >= -1"),
    "search_done": (_flag, "true or false"),
    "finalists": (_list_of(_text), "a list of architectures"),
    "final_seeds": (_whole, "a whole number >= 0"),
    "finals": (lambda v: isinstance(v, list) and all(
        isinstance(f, dict) and _text(f.get("arch")) and _whole(f.get("replica")) and finite_number(f.get("accuracy"))
        for f in v), "a list of {arch, replica, accuracy}"),
    "elapsed_s": (_at_least_zero, "a number of seconds >= 0"),
    "finished": (_flag, "true or false"),
    "stop_reason": (_text, "text"),
}
#: Fields every state.json has had (a state without them was cut or edited).
_STATE_REQUIRED = ("round", "verified", "measured")

_VERIFIED_FIELDS: dict[str, tuple[Any, str]] = {
    "arch": (lambda v: isinstance(v, str) and bool(v), "an architecture"),
    "accuracy": (finite_number, "a numeric accuracy"),
    "latency_ms": (_positive, "a positive number"),
    "round": (_round, "a whole number >= 0"),
    "latency_measured": (_flag, "true or false"),
    "predicted_accuracy": (_optional(finite_number), "a number or null"),
    "predicted_latency_ms": (_optional(finite_number), "a number or null"),
    "measurements_used": (_optional(_whole), "a whole number >= 0 or null"),
    "elapsed_s": (_optional(_at_least_zero), "a number >= 0 or null"),
    "params": (_optional(_whole), "a whole number >= 0 or null"),
    "macs": (_optional(_whole), "a whole number >= 0 or null"),
    "train_seconds": (_optional(_at_least_zero), "a number >= 0 or null"),
    "test_accuracy": (_optional(finite_number), "a number or null"),
    "seed": (_optional(_whole), "a whole number >= 0 or null"),
}
_MEASURED_FIELDS: dict[str, tuple[Any, str]] = {
    "arch": _VERIFIED_FIELDS["arch"],
    "latency_ms": (_positive, "a positive number"),
    "round": (_round, "a whole number >= 0"),
    "measured": (_flag, "true or false"),
    "predicted_latency_ms": (_optional(finite_number), "a number or null"),
}


def _check_state(path: Path, data: Mapping[str, Any], *, resuming: bool = False) -> None:
    """Every field of ``state.json`` has its type and range (one line naming the file and the field);
    ``resuming``: accuracies must also be fractions in [0, 1] (a resumed run's answer is one of them). Unknown
    keys are ignored with a warning (a newer hwnas may add some)."""
    def corrupt(field: str, value: Any, rule: str) -> RunDirError:
        return RunDirError(f"{path} is corrupt: {field} is {_short(value)}, not {rule}")

    for name, (check, rule) in _STATE_FIELDS.items():
        if name in data and not check(data[name]):
            raise corrupt(name, data[name], rule)
    unknown = sorted(set(data) - set(_STATE_FIELDS))
    if unknown:
        logger.warning("%s: ignoring unknown keys %s (written by a newer hwnas?)", path,
                       ", ".join(repr(k)[:40] for k in unknown[:5]))
    for what, specs, required in (("verified", _VERIFIED_FIELDS, ("arch", "accuracy", "latency_ms", "round")),
                                  ("measured", _MEASURED_FIELDS, ("arch", "latency_ms", "round"))):
        for i, entry in enumerate(data.get(what, [])):
            if not isinstance(entry, dict):
                raise corrupt(f"{what}[{i}]", entry, "an object")
            for name in required:
                if name not in entry:
                    raise RunDirError(f"{path} is corrupt: {what}[{i}].{name} is missing")
            for name, (check, rule) in specs.items():
                if name in entry and not check(entry[name]):
                    raise corrupt(f"{what}[{i}].{name}", entry[name], rule)
    for name in _STATE_REQUIRED:
        if name not in data:
            raise RunDirError(f"{path} is corrupt: {name!r} is missing")
    if resuming:
        fractions = [(f"verified[{i}].{k}", e.get(k)) for i, e in enumerate(data["verified"])
                     for k in ("accuracy", "test_accuracy")]
        fractions += [(f"finals[{i}].accuracy", f["accuracy"]) for i, f in enumerate(data.get("finals", []))]
        for field, value in fractions:
            if value is not None and not _unit(value):
                raise corrupt(field, value, "an accuracy between 0 and 1")
