"""What a search run is told (:class:`SearchSettings`), what it has done (:class:`SearchState`, saved as
``state.json``), its records, and the protocols of the sources of truth it reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from hwnas.arch import Arch
from hwnas.errors import HwnasError


class AccuracySource(Protocol):
    """Real accuracy: trainings (through the evaluation store) or table look-ups."""

    def evaluate(self, arch: Arch) -> dict[str, Any]:
        """Returns at least ``{"accuracy": float}``; stored so that asking again costs nothing."""

    def known(self) -> list[tuple[str, float]]:
        """Every ``(arch string, accuracy)`` already evaluated under this source's conditions."""

    # Optional: ``replica(index) -> AccuracySource | None``, the same evaluation with another training seed
    # (``index`` >= 1), for the finalists' extra seeds (:mod:`hwnas.search.finals`); None, or no such method,
    # where a repeat gives the same number (a table).


class EstimateSource(Protocol):
    """Cheap accuracy estimates (a supernet's): many per round, never the answer."""

    def estimate(self, arch: Arch) -> float:
        """The estimated validation accuracy of ``arch`` (stored, so asking again costs a look-up)."""


class LatencySource(Protocol):
    """Real latency: measurements on the device (added to its profile) or table look-ups."""

    def measure(self, arch: Arch) -> dict[str, Any]:
        """``{"latency_ms": median, "measured": bool}``; a measurement is stored in the profile. ``measured`` is
        False where the device cannot be reached and the value is a prediction."""

    def known(self) -> list[tuple[str, float]]:
        """Every ``(arch string, latency_ms)`` in the profile for this space and input shape."""


@dataclass
class SearchSettings:
    """Knobs of the loop (the CLI's options).

    Attributes:
        budget_ms: Latency budget.
        max_trainings: Real evaluations (trainings) allowed, initial ones included.
        max_measurements: Latency measurements allowed (None: 20 x ``max_trainings``); every candidate is
            measured before it is trained, and one over the budget is never trained.
        time_budget_s: Wall-clock limit over all sessions of the run (None: none).
        initial_trainings: Diverse real evaluations before the first round.
        candidates_per_round: Trainings per round picked by the acquisition.
        explore_per_round: Trainings per round spent on candidates chosen for information, not exploitation
            (see ``explore_by``).
        explore_by: How those are chosen among the round's random samples likely to fit the budget
            (:data:`~hwnas.search.acquisition.EXPLORATIONS`): ``acquisition`` (its best value among them: the
            best measured on NAS-Bench-201), ``distance`` (farthest from everything trained) or ``uncertainty``
            (the predictor's largest spread).
        archs_per_round: Predicted evaluations the controller spends per round.
        explore: Weight of the accuracy uncertainty in the controller's reward and in the ``ucb`` acquisition.
        local_search_steps: Hill-climbing steps on the predicted reward from the best proposals before the
            candidates are picked (0: none); see :meth:`SearchLoop._local_search`.
        acquisition: How the pool is ranked for measurement and training (:mod:`hwnas.search.acquisition`).
        neighbours_of_best: The neighbours of this many best verified architectures join each round's pool.
        random_per_round: Uniform random architectures that join each round's pool, whatever the controller
            proposes: a learned controller concentrates its proposals where the predictor is confident, and
            the acquisition needs candidates from where it is not.
        measurements_per_round: Most candidates a round measures while filling its training slots.
        min_feasibility: Candidates less likely than this to fit the budget (by the latency predictor) are
            not measured.
        num_classes: Classes of the task (for the chance-level check of the result; None: no check).
        initial_estimates: With an estimator (a supernet): architectures likely to fit the budget that are
            estimated before the first training; the initial trainings are the best estimated ones.
        estimates_per_round: With an estimator: the acquisition's best unestimated candidates estimated each
            round before the queue is ranked (their calibrated estimates replace the predictions).
        seed: Seed of the loop (initial samples, exploration picks, controller).
        skip_equivalent: Never train an architecture equivalent to one trained already (the space's
            :meth:`~hwnas.spaces.base.SearchSpace.equivalence_key`): its accuracy differs only by training
            noise, and the training is better spent elsewhere.
        final_seeds: Extra training seeds for each finalist before the search ends; the answer is the finalist
            with the best mean (:mod:`hwnas.search.finals`). None: 2 where the accuracy source trains, 0 where
            it looks accuracies up; 0: the single best training is the answer.
        finalists: How many of the best trained architectures are finalists.
    """

    budget_ms: float
    max_trainings: int = 30
    max_measurements: int | None = None
    time_budget_s: float | None = None
    initial_trainings: int = 8
    candidates_per_round: int = 4
    explore_per_round: int = 1
    archs_per_round: int = 2000
    explore: float = 1.0
    local_search_steps: int = 3
    acquisition: str = "ucb"
    neighbours_of_best: int = 5
    random_per_round: int = 1000
    measurements_per_round: int = 50
    min_feasibility: float = 0.1
    num_classes: int | None = None
    initial_estimates: int = 200
    estimates_per_round: int = 20
    seed: int = 0
    skip_equivalent: bool = True
    explore_by: str = "acquisition"
    final_seeds: int | None = None
    finalists: int = 3

    @property
    def measurement_cap(self) -> int:
        return MEASUREMENTS_PER_TRAINING * self.max_trainings if self.max_measurements is None \
            else self.max_measurements


#: Default measurement budget per allowed training (``--max-measurements``).
MEASUREMENTS_PER_TRAINING = 20


@dataclass
class Verified:
    """One architecture with real accuracy and measured latency (a trial of :mod:`hwnas.search.result`):
    ``params``, ``macs``, ``train_seconds``, ``test_accuracy`` and ``seed`` where its training reported them
    (None for a table look-up, and in runs made before they were recorded)."""

    arch: str
    accuracy: float
    latency_ms: float
    round: int
    latency_measured: bool = True
    predicted_accuracy: float | None = None
    predicted_latency_ms: float | None = None
    measurements_used: int | None = None
    elapsed_s: float | None = None
    params: int | None = None
    macs: int | None = None
    train_seconds: float | None = None
    test_accuracy: float | None = None
    seed: int | None = None


@dataclass
class Measured:
    """One latency the loop measured (or looked up in a table) for a candidate."""

    arch: str
    latency_ms: float
    round: int
    measured: bool = True
    predicted_latency_ms: float | None = None


@dataclass
class SearchState:
    """What a run has done; saved as ``state.json`` after every step.

    ``pending`` is the round's queue of candidates in the order they are measured, ``pending_group`` the
    training-slot group of each (0: picked by the acquisition, 1: exploration, 2: the fallback, which fills
    any group's slots left when the others run out) and ``slots`` the trainings each group may still start
    this round; ``training`` the candidates measured within the budget and selected
    for training, not trained yet (``{"arch", "latency_ms", "measured"}``); ``round_start`` the (trainings, measurements) counts when the
    round's queue was made, so that its history row counts the whole round even after a resume. A round's
    queue is cleared in the same state write that advances ``round``, after its history row is written:
    a kill at any point between them redoes nothing.
    """

    round: int = 0
    verified: list["Verified"] = field(default_factory=list)
    measured: list["Measured"] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    pending_group: list[int] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    pending_predictions: dict[str, list[float]] = field(default_factory=dict)
    training: list[dict] = field(default_factory=list)
    round_start: list[int] = field(default_factory=list)
    learned_round: int = 0
    estimated: dict[str, float] = field(default_factory=dict)
    latency_fit: list[int] = field(default_factory=list)
    refilled_round: int = -1
    search_done: bool = False
    finalists: list[str] = field(default_factory=list)
    final_seeds: int = 0
    finals: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0
    finished: bool = False
    stop_reason: str = ""

    @property
    def trainings(self) -> int:
        """Trainings spent: the search's and the finalists' extra seeds."""
        return len(self.verified) + len(self.finals)

    @property
    def measurements(self) -> int:
        return len(self.measured)


class SearchError(HwnasError):
    """A search cannot start or continue."""
