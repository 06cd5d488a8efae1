"""The answer of a search, typed: :class:`SearchResult` with every trained candidate (:class:`Trial`).

The loop builds one :class:`SearchResult` when it ends (:func:`hwnas.search.document.build_result`) and writes
it as ``result.json`` (:meth:`SearchResult.to_document`); the command line, the report, the export and the
Python API read it back with :meth:`SearchResult.from_document` / :func:`read_result`. This module is the only
one that knows the document's keys: everything else reads attributes.

A result written before trials were recorded (no ``trials`` key) gets them from the run's ``state.json`` when
read with :func:`read_result`; its trials then lack test accuracy, parameters, MACs and training time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

from hwnas.errors import HwnasError
from hwnas.io import finite_number

#: The columns of ``hwnas trials`` and ``verified.csv``, in order (:meth:`Trial.row`).
TRIAL_COLUMNS = ("number", "round", "arch", "accuracy", "mean_accuracy", "accuracy_std", "seeds", "test_accuracy",
                 "latency_ms", "latency_measured", "params", "macs", "train_seconds", "seed", "elapsed_s",
                 "predicted_accuracy", "predicted_latency_ms", "measurements_used")


class ResultError(HwnasError):
    """A ``result.json`` that is not a search result (a field missing or of the wrong type)."""


@dataclass(frozen=True)
class Trial:
    """One trained candidate of a search (an accuracy look-up or an accuracy function call counts as one).

    Attributes:
        number: Its place in the run's record of trainings (1 is the first; trainings run side by side on Ray
            are recorded in the order they were selected, so ``elapsed_s`` tells the order they finished).
        round: The round that trained it (0: the initial trainings).
        arch: The architecture string.
        accuracy: Validation accuracy of the search's training of it.
        latency_ms: Latency on the device (measured unless ``latency_measured`` is False: predicted because the
            device was out of reach).
        mean_accuracy, accuracy_std, seeds: Where it was re-trained with other seeds (a finalist): the mean and
            sample standard deviation of its validation accuracies over ``seeds`` trainings; else the one
            accuracy, None and 1.
        test_accuracy: Test accuracy measured once at the end of its training (never used to select; None for a
            table, an accuracy function, or a run made before it was recorded).
        params, macs: Parameters and multiply-accumulates of the built model (None for a table look-up).
        train_seconds: Wall-clock seconds of its training (None where it was looked up).
        seed: The training seed.
        elapsed_s: The run's wall-clock seconds when it finished.
        predicted_accuracy, predicted_latency_ms: What the predictors said before it was trained.
        measurements_used: Latency measurements the run had spent when it finished.
    """

    number: int
    round: int
    arch: str
    accuracy: float
    latency_ms: float
    latency_measured: bool = True
    mean_accuracy: float | None = None
    accuracy_std: float | None = None
    seeds: int = 1
    test_accuracy: float | None = None
    params: int | None = None
    macs: int | None = None
    train_seconds: float | None = None
    seed: int | None = None
    elapsed_s: float | None = None
    predicted_accuracy: float | None = None
    predicted_latency_ms: float | None = None
    measurements_used: int | None = None

    @property
    def selected_accuracy(self) -> float:
        """The accuracy the answer is chosen by: the mean over seeds where re-trained, else the one."""
        return self.accuracy if self.mean_accuracy is None else self.mean_accuracy

    def row(self) -> dict[str, Any]:
        """The trial as one flat row (:data:`TRIAL_COLUMNS`)."""
        return {name: getattr(self, name) for name in TRIAL_COLUMNS}

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any], *, number: int | None = None, where: str = "trial") -> "Trial":
        """A trial from its JSON (or a ``state.json`` record; keys of a newer hwnas ignored)."""
        if not isinstance(entry, Mapping):
            raise ResultError(f"{where} is not an object")
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in entry.items() if k in names}
        if number is not None:
            values.setdefault("number", number)
        for key, check in (("arch", _text), ("accuracy", finite_number), ("latency_ms", _positive), ("number", _whole),
                           ("round", _whole)):
            if not check(values.get(key)):
                raise ResultError(f"{where}: {key} is missing or invalid ({values.get(key)!r})")
        for key in ("mean_accuracy", "test_accuracy", "predicted_accuracy"):
            if values.get(key) is not None and not finite_number(values[key]):
                raise ResultError(f"{where}: {key} must be a number, got {values[key]!r}")
        return cls(**values)


@dataclass(frozen=True)
class Finalist:
    """A finalist of the search's finals: its validation accuracies over its seeds (the search's training
    first), their mean and sample standard deviation."""

    arch: str
    latency_ms: float
    accuracies: list[float]
    mean: float
    std: float

    @property
    def seeds(self) -> int:
        return len(self.accuracies)


@dataclass(frozen=True)
class Candidate:
    """One of the fastest architectures of a run where none fits the budget (accuracy None: not trained)."""

    arch: str
    latency_ms: float
    latency_measured: bool = True
    accuracy: float | None = None


@dataclass(frozen=True)
class SearchResult:
    """The answer of a search (``result.json``, typed).

    Attributes:
        run_dir: The run's folder (resume, export and report it).
        best: The most accurate *trained* architecture whose *measured* latency fits the budget (None: none).
        pareto_front: Trained architectures not dominated in accuracy and latency, fastest first.
        budget_ms: The latency budget.
        stop_reason: Why the search stopped.
        trainings_used: Trainings (or accuracy look-ups, or accuracy-function calls) spent.
        measurements_used: Latency measurements spent.
        test_accuracy: The best's test accuracy, measured once at the end of its search training (None for a
            table or an accuracy function).
        finalists: The finalists re-trained with other seeds (``--final-seeds``), best mean first (the answer
            first); empty when there were no finals.
        trials: Every trained candidate, in the order trained (:class:`Trial`).
        rounds: Rounds the search ran.
        elapsed_s: Wall-clock seconds over all its sessions.
        closest: Where nothing fits the budget: the fastest architectures it measured.
        warning: Why the result may not mean much (accuracies near chance or within noise), with the remedy.
        acquisition, estimator: How candidates were ranked and their accuracy estimated.
        estimates_used: Supernet estimates spent.
        supernet: The supernet the estimates came from (path, checksum, epochs, ...), None without one.
        document: ``result.json`` as written.
    """

    run_dir: Path
    best: Trial | None
    pareto_front: list[Trial]
    budget_ms: float
    stop_reason: str
    trainings_used: int
    measurements_used: int
    test_accuracy: float | None = None
    finalists: list[Finalist] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)
    rounds: int = 0
    elapsed_s: float = 0.0
    closest: list[Candidate] = field(default_factory=list)
    warning: str | None = None
    acquisition: str | None = None
    estimator: str = "train"
    estimates_used: int = 0
    supernet: dict[str, Any] | None = None
    document: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- views -----------------------------------------------------------------------------------------------
    @property
    def feasible(self) -> bool:
        """Whether a trained architecture fits the budget."""
        return self.best is not None

    @property
    def latency_measured(self) -> bool:
        """Whether every trained architecture's latency was measured (none predicted)."""
        return all(t.latency_measured for t in self.trials)

    @property
    def trainings_within_budget(self) -> int:
        return sum(t.latency_ms <= self.budget_ms for t in self.trials)

    @property
    def trainings_over_budget(self) -> int:
        return sum(t.latency_ms > self.budget_ms for t in self.trials)

    def sorted_trials(self, column: str = "number", *, descending: bool | None = None) -> list[Trial]:
        """The trials sorted by ``column`` (:func:`sort_trials`)."""
        return sort_trials(self.trials, column, descending=descending)

    # -- the mapping view of result.json (``run_search`` returned that dict before this type; scripts written then
    # keep working: ``result["best"]``, ``dict(result)``, ``{**result}``; ``json.dumps(result.document)``) ----------
    def __getitem__(self, key: str) -> Any:
        """``result["best"]``: the entries of ``result.json`` (read the attributes instead)."""
        return self.document[key]

    def get(self, key: str, default: Any = None) -> Any:
        """``result.get(key)`` of ``result.json`` (see :meth:`__getitem__`)."""
        return self.document.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.document)

    def __len__(self) -> int:
        return len(self.document)

    def __contains__(self, key: object) -> bool:
        return key in self.document

    def keys(self) -> Any:
        return self.document.keys()

    def items(self) -> Any:
        return self.document.items()

    def values(self) -> Any:
        return self.document.values()

    # -- the document ----------------------------------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        """``result.json``: the keys hwnas has always written (``best``, ``pareto_front``, ...) and ``trials``."""
        best = None
        if self.best is not None:
            best = _verified_dict(self.best)
            if self.best.mean_accuracy is not None:
                best.update(mean_accuracy=self.best.mean_accuracy, accuracy_std=self.best.accuracy_std,
                            seeds=self.best.seeds)
        document: dict[str, Any] = {
            "budget_ms": self.budget_ms, "trainings_used": self.trainings_used, "rounds": self.rounds,
            "stop_reason": self.stop_reason, "elapsed_s": self.elapsed_s, "feasible": self.feasible,
            "best": best, "finalists": [_finalist_dict(f) for f in self.finalists],
            "closest": [asdict(c) for c in self.closest],
            "pareto_front": [_verified_dict(t) for t in self.pareto_front],
            "verified_within_budget": self.trainings_within_budget, "latency_measured": self.latency_measured,
            "measurements_used": self.measurements_used, "trainings_over_budget": self.trainings_over_budget,
            "acquisition": self.acquisition, "estimates_used": self.estimates_used,
        }
        if self.warning:
            document["warning"] = self.warning
        document["estimator"] = self.estimator
        if self.best is not None:
            document["test_accuracy"] = self.test_accuracy
        if self.supernet is not None:
            document["supernet"] = dict(self.supernet)
        document["trials"] = [t.row() for t in self.trials]
        return document

    def with_document(self) -> "SearchResult":
        """This result with :attr:`document` set to :meth:`to_document`."""
        return replace(self, document=self.to_document())

    @classmethod
    def from_document(cls, run_dir: str | Path, document: Mapping[str, Any], *,
                      trials: Sequence[Trial] | None = None) -> "SearchResult":
        """Reads ``result.json`` (``trials`` stand in where an older document has none).

        Raises:
            ResultError: a field missing or of the wrong type (one line naming it).
        """
        if not isinstance(document, Mapping):
            raise ResultError("the search result is not a JSON object")
        budget: Any = document.get("budget_ms")
        if not _positive(budget):
            raise ResultError(f"the search result's budget_ms is missing or invalid ({budget!r})")
        listed = document.get("trials")
        if isinstance(listed, list):
            trials = [Trial.from_dict(t, number=i + 1, where=f"trial {i + 1}") for i, t in enumerate(listed)]
        trials = list(trials or [])
        by_arch = {t.arch: t for t in trials}

        def trial(entry: Any, where: str) -> Trial:
            if isinstance(entry, Mapping) and entry.get("arch") in by_arch:
                return by_arch[entry["arch"]]
            return Trial.from_dict(entry, number=0, where=where)

        best = document.get("best")
        finalists = []
        for i, f in enumerate(document.get("finalists") or []):
            try:
                finalists.append(Finalist(arch=str(f["arch"]), latency_ms=float(f["latency_ms"]),
                                          accuracies=[float(a) for a in f["accuracies"]], mean=float(f["mean"]),
                                          std=float(f["std"])))
            except (KeyError, TypeError, ValueError):
                raise ResultError(f"finalist {i + 1} of the search result is invalid") from None
        closest = []
        for i, c in enumerate(document.get("closest") or []):
            if not (isinstance(c, Mapping) and _text(c.get("arch")) and _positive(c.get("latency_ms"))):
                raise ResultError(f"closest entry {i + 1} of the search result is invalid")
            closest.append(Candidate(arch=c["arch"], latency_ms=float(c["latency_ms"]),
                                     latency_measured=bool(c.get("latency_measured", True)),
                                     accuracy=c.get("accuracy")))
        for key in ("trainings_used", "measurements_used", "rounds", "estimates_used"):
            value = document.get(key, 0)
            if not (_whole(value) and value >= 0):
                raise ResultError(f"the search result's {key} must be a whole number, got {value!r}")
        test: Any = document.get("test_accuracy")
        return cls(run_dir=Path(run_dir), best=None if not best else trial(best, "best"),
                   pareto_front=[trial(v, f"Pareto front entry {i + 1}")
                                 for i, v in enumerate(document.get("pareto_front") or [])],
                   budget_ms=float(budget), stop_reason=str(document.get("stop_reason", "")),
                   trainings_used=int(document.get("trainings_used", 0)),
                   measurements_used=int(document.get("measurements_used", 0)),
                   test_accuracy=float(test) if finite_number(test) else None, finalists=finalists, trials=trials,
                   rounds=int(document.get("rounds", 0)), elapsed_s=float(document.get("elapsed_s") or 0.0),
                   closest=closest, warning=document.get("warning") or None,
                   acquisition=document.get("acquisition"), estimator=str(document.get("estimator", "train")),
                   estimates_used=int(document.get("estimates_used", 0)),
                   supernet=dict(document["supernet"]) if isinstance(document.get("supernet"), Mapping) else None,
                   document=dict(document))


#: Columns sorted best first by default.
DESCENDING = ("accuracy", "mean_accuracy", "test_accuracy", "predicted_accuracy")


def sort_trials(trials: Sequence[Trial], column: str = "number", *, descending: bool | None = None) -> list[Trial]:
    """``trials`` sorted by ``column`` (one of :data:`TRIAL_COLUMNS`; missing values last, ties in training
    order); accuracies best first unless ``descending`` says otherwise.

    Raises:
        HwnasError: an unknown column.
    """
    if column not in TRIAL_COLUMNS:
        raise HwnasError(f"unknown column {column!r} (known: {', '.join(TRIAL_COLUMNS)})")
    if descending is None:
        descending = column in DESCENDING
    present = [t for t in trials if getattr(t, column) is not None]
    missing = [t for t in trials if getattr(t, column) is None]
    present.sort(key=lambda t: t.number)
    present.sort(key=lambda t: getattr(t, column), reverse=descending)
    return present + sorted(missing, key=lambda t: t.number)


def trials_from_records(records: Sequence[Any], finalists: Sequence[Finalist] = ()) -> list[Trial]:
    """The trials of a run's trained records (``state.json``'s ``verified``: :class:`~hwnas.search.state.Verified`
    objects or their dicts), with each finalist's mean and spread over its seeds."""
    stats = {f.arch: f for f in finalists}
    trials = []
    for i, record in enumerate(records):
        entry = asdict(record) if not isinstance(record, Mapping) else dict(record)
        trial = Trial.from_dict(entry, number=i + 1, where=f"trained entry {i + 1}")
        final = stats.get(trial.arch)
        if final is not None:
            trial = replace(trial, mean_accuracy=final.mean, accuracy_std=final.std, seeds=final.seeds)
        trials.append(trial)
    return trials


def _verified_dict(trial: Trial) -> dict[str, Any]:
    """A trial as ``result.json`` has always written an architecture (the search's own record)."""
    keys = ("arch", "accuracy", "latency_ms", "round", "latency_measured", "predicted_accuracy",
            "predicted_latency_ms", "measurements_used", "elapsed_s", "params", "macs", "train_seconds",
            "test_accuracy", "seed")
    return {k: getattr(trial, k) for k in keys}


def _finalist_dict(finalist: Finalist) -> dict[str, Any]:
    return {"arch": finalist.arch, "latency_ms": finalist.latency_ms, "accuracies": list(finalist.accuracies),
            "mean": finalist.mean, "std": finalist.std, "seeds": finalist.seeds}


def _positive(value: Any) -> bool:
    return finite_number(value, positive=True)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


Mapping.register(SearchResult)  # dict(result), {**result}: the read-only view of result.json
