"""What a search reports while it runs: typed events, and :class:`SearchCallback` to receive them.

The loop hands every event to one callback; a :class:`SearchCallback` subclass overrides the ``on_*`` methods
it cares about (as stable-baselines3's ``BaseCallback`` does): the command line's progress lines and live bar
are two such callbacks, and a Python user passes their own to :func:`hwnas.start_search`::

    class Printer(hwnas.SearchCallback):
        def on_trained(self, event):
            print(event.record.arch, event.record.accuracy)

Events are plain frozen dataclasses; each names the method that receives it (``hook``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Mapping

from hwnas.search.result import SearchResult
from hwnas.search.state import Verified

if TYPE_CHECKING:
    from hwnas.search.config import RunConfig


@dataclass(frozen=True)
class SearchEvent:
    """Base of the events; ``hook`` is the :class:`SearchCallback` method that receives it."""

    hook: ClassVar[str] = "on_other"


@dataclass(frozen=True)
class SearchStarted(SearchEvent):
    """A session of the run starts (a new run, or a resume): what is done already; the run's folder, its
    configuration and the trainings of earlier sessions (a tracker catches up on them: :mod:`hwnas.search.tracking`)."""

    hook: ClassVar[str] = "on_search_start"
    max_trainings: int
    trainings_done: int
    budget_ms: float
    run_dir: Path | None = None
    config: "RunConfig | None" = None
    verified: tuple[Verified, ...] = ()


@dataclass(frozen=True)
class Estimating(SearchEvent):
    """The supernet is about to estimate ``count`` architectures (``estimated`` so far)."""

    hook: ClassVar[str] = "on_estimating"
    count: int
    estimated: int


@dataclass(frozen=True)
class InitialPhase(SearchEvent):
    """The initial diverse trainings start (``count`` of them)."""

    hook: ClassVar[str] = "on_initial"
    count: int


@dataclass(frozen=True)
class Learning(SearchEvent):
    """The controller learns on the predicted reward of round ``round``."""

    hook: ClassVar[str] = "on_learning"
    round: int


@dataclass(frozen=True)
class LatencyMeasured(SearchEvent):
    """A candidate's latency was measured (or looked up in a table) before any training."""

    hook: ClassVar[str] = "on_measured"
    arch: str
    latency_ms: float
    feasible: bool
    measurements: int


@dataclass(frozen=True)
class TrainingStarted(SearchEvent):
    """A candidate within the budget starts training (``trainings`` finished before it)."""

    hook: ClassVar[str] = "on_training"
    arch: str
    round: int
    trainings: int


@dataclass(frozen=True)
class Trained(SearchEvent):
    """A training finished: its record, the best verified architecture so far (None: none fits yet)."""

    hook: ClassVar[str] = "on_trained"
    record: Verified
    best: Verified | None
    measurements: int


@dataclass(frozen=True)
class FinalsStarted(SearchEvent):
    """The finals start: each of ``finalists`` is trained ``seeds`` more times (:mod:`hwnas.search.finals`)."""

    hook: ClassVar[str] = "on_finals"
    finalists: tuple[str, ...]
    seeds: int


@dataclass(frozen=True)
class FinalistTrained(SearchEvent):
    """One extra-seed training of a finalist finished (``replica`` of ``seeds``)."""

    hook: ClassVar[str] = "on_finalist_trained"
    arch: str
    replica: int
    seeds: int
    accuracy: float


@dataclass(frozen=True)
class RoundDone(SearchEvent):
    """A round finished; ``row`` is its ``history.csv`` row (trainings and measurements used, best so far,
    the predictors' quality on the round's new truth)."""

    hook: ClassVar[str] = "on_round_done"
    round: int
    trainings_used: int
    measurements_used: int
    new_measured: int
    new_over_budget: int
    row: Mapping[str, Any]


@dataclass(frozen=True)
class SearchFinished(SearchEvent):
    """The run stopped with ``result`` (written as ``result.json``)."""

    hook: ClassVar[str] = "on_search_end"
    result: SearchResult


class SearchCallback:
    """Receives a search's events; override the ``on_*`` methods wanted (each does nothing by default)."""

    def __call__(self, event: SearchEvent) -> None:
        self.on_event(event)
        getattr(self, event.hook)(event)

    def on_event(self, event: SearchEvent) -> None:
        """Every event, before its own method."""

    def on_other(self, event: SearchEvent) -> None:
        pass

    def on_search_start(self, event: SearchStarted) -> None:
        pass

    def on_estimating(self, event: Estimating) -> None:
        pass

    def on_initial(self, event: InitialPhase) -> None:
        pass

    def on_learning(self, event: Learning) -> None:
        pass

    def on_measured(self, event: LatencyMeasured) -> None:
        pass

    def on_training(self, event: TrainingStarted) -> None:
        pass

    def on_trained(self, event: Trained) -> None:
        pass

    def on_finals(self, event: FinalsStarted) -> None:
        """The finals start."""

    def on_finalist_trained(self, event: FinalistTrained) -> None:
        """A finalist's extra-seed training finished."""

    def on_round_done(self, event: RoundDone) -> None:
        pass

    def on_search_end(self, event: SearchFinished) -> None:
        pass


class CallbackList(SearchCallback):
    """Several callbacks, called in order."""

    def __init__(self, callbacks: Iterable[SearchCallback]) -> None:
        self.callbacks = [c for c in callbacks if c is not None]

    def __call__(self, event: SearchEvent) -> None:
        for callback in self.callbacks:
            callback(event)
