"""The search loop: controller on predicted reward, real verification of the best candidates, refit, repeat.

Data flows one way: sources of truth (device profile, evaluation store or tables) -> predictors -> predicted
objective -> controller -> candidates -> verification -> sources of truth. The answer is never a prediction:
it is the verified architecture with the best *real* validation accuracy whose *measured* latency is within
the budget.

Resume: everything the loop knows lives in the run directory (``state.json``, written atomically after each
verification) and in the sources (a finished training or measurement is stored there the moment it ends). A
run stopped by Ctrl-C or ``kill -9`` resumes at the interrupted step; re-verifying a candidate whose training
had finished costs a store look-up, not a training.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from hwnas.arch import Arch
from hwnas.errors import HwnasError
from hwnas.predictors import AccuracyPredictor, ArchFeaturizer, LatencyPredictor
from hwnas.predictors.metrics import kendall, mape
from hwnas.search.controllers import Controller
from hwnas.search.objective import PredictedObjective
from hwnas.search.reward import Reward
from hwnas.search.rundir import RunDir
from hwnas.spaces.base import SearchSpace

logger = logging.getLogger(__name__)


class AccuracySource(Protocol):
    """Real accuracy: trainings (through the evaluation store) or table look-ups."""

    def evaluate(self, arch: Arch) -> dict[str, Any]:
        """Returns at least ``{"accuracy": float}``; stored so that asking again costs nothing."""

    def known(self) -> list[tuple[str, float]]:
        """Every ``(arch string, accuracy)`` already evaluated under this source's conditions."""


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
        time_budget_s: Wall-clock limit over all sessions of the run (None: none).
        initial_trainings: Diverse real evaluations before the first round.
        candidates_per_round: Top predicted candidates verified per round.
        explore_per_round: Extra candidates per round drawn among the controller's proposals at random.
        archs_per_round: Predicted evaluations the controller spends per round.
        explore: Weight of the accuracy uncertainty in the reward (upper confidence bound).
        local_search_steps: Hill-climbing steps on the predicted reward from the best proposals before the
            candidates are picked (0: none); see :meth:`SearchLoop._local_search`.
        seed: Seed of the loop (initial samples, exploration picks, controller).
    """

    budget_ms: float
    max_trainings: int = 30
    time_budget_s: float | None = None
    initial_trainings: int = 10
    candidates_per_round: int = 4
    explore_per_round: int = 1
    archs_per_round: int = 2000
    explore: float = 0.5
    local_search_steps: int = 3
    seed: int = 0


@dataclass
class Verified:
    """One architecture with real accuracy and measured latency."""

    arch: str
    accuracy: float
    latency_ms: float
    round: int
    latency_measured: bool = True
    predicted_accuracy: float | None = None
    predicted_latency_ms: float | None = None


@dataclass
class SearchState:
    """What a run has done; saved as ``state.json`` after every step."""

    round: int = 0
    verified: list[dict] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    pending_predictions: dict[str, list[float]] = field(default_factory=dict)
    elapsed_s: float = 0.0
    finished: bool = False
    stop_reason: str = ""

    @property
    def trainings(self) -> int:
        return len(self.verified)


class SearchLoop:
    """Runs (or resumes) a search in a run directory.

    Args:
        space: The search space.
        controller: The controller (its checkpoint lives in the run directory).
        reward: Reward on predicted accuracy and latency.
        accuracy_source: Real accuracy.
        latency_source: Real latency.
        settings: Loop settings.
        run_dir: Where state, history, checkpoints and results go.
        make_accuracy_predictor: Returns an unfitted accuracy predictor.
        make_latency_predictor: Returns an unfitted latency predictor.
        on_event: Called with ``(event, info)`` for progress display.
    """

    def __init__(self, *, space: SearchSpace, controller: Controller, reward: Reward,
                 accuracy_source: AccuracySource, latency_source: LatencySource, settings: SearchSettings,
                 run_dir: RunDir, make_accuracy_predictor: Callable[[], AccuracyPredictor],
                 make_latency_predictor: Callable[[], LatencyPredictor],
                 on_event: Callable[[str, dict], None] | None = None) -> None:
        self.space = space
        self.controller = controller
        self.reward = reward
        self.accuracy_source = accuracy_source
        self.latency_source = latency_source
        self.settings = settings
        self.run_dir = run_dir
        self.make_accuracy_predictor = make_accuracy_predictor
        self.make_latency_predictor = make_latency_predictor
        self.on_event = on_event or (lambda event, info: None)
        self.state = run_dir.load_state() or SearchState()
        self._session_start = time.monotonic()
        self._elapsed_at_start = self.state.elapsed_s
        self._featurizers: dict[tuple, ArchFeaturizer] = {}

    # -- public ----------------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Runs until the training or time budget is spent; returns the result (also in ``result.json``)."""
        if self.run_dir.controller_checkpoint.exists():
            self.controller.load(self.run_dir.controller_checkpoint)
        if self.state.finished and not self._out_of_budget():  # resumed with a larger budget
            self.state.finished = False
        if self.state.finished and self.run_dir.result_file.exists():
            return self.run_dir.read_result()  # nothing left to do: the stored answer stands
        if not self.state.finished:
            self._initial()
            while not self._out_of_budget():
                if self._round() == 0:  # neither the controller nor random samples found anything new
                    self.state.stop_reason = "no unverified architecture left to try"
                    break
            self.state.finished = True
            self._save()
        return self._result()

    # -- phases ----------------------------------------------------------------------------------------------
    def _initial(self) -> None:
        if self.state.round > 0:
            return
        if not self.state.pending:
            rng = np.random.default_rng([self.settings.seed, 0])
            n = min(self.settings.initial_trainings, self.settings.max_trainings)
            self.state.pending = [a.string for a in self._diverse_sample(n, rng)]
            self._save()
        self.on_event("initial", {"count": len(self.state.pending)})
        self._verify_pending(round_index=0)
        self.state.round = 1
        self._save()

    def _round(self) -> int:
        """One round (resuming its verifications if it was interrupted); returns how many it verified."""
        r = self.state.round
        if not self.state.pending:
            acc_model, lat_model = self._fit_predictors(r)
            objective = PredictedObjective(accuracy=acc_model.predict_dist, latency=lat_model.predict_dist,
                                           reward=self.reward, target_ms=self.settings.budget_ms,
                                           explore=self.settings.explore)
            self.on_event("learn", {"round": r})
            self.controller.learn(objective, self.settings.archs_per_round)
            self.controller.save(self.run_dir.controller_checkpoint)
            picks = self._pick_candidates(objective, r)
            self.state.pending = [s.arch.string for s in picks]
            self.state.pending_predictions = {s.arch.string: [s.accuracy, s.latency_ms] for s in picks}
            self._save()
        before = self.state.trainings
        self._verify_pending(round_index=r)
        new = self.state.verified[before:]
        row = self._history_row(r, new)
        self.run_dir.append_history(row)
        self.on_event("round_done", row)
        self.state.round = r + 1
        self._save()
        return len(new)

    # -- steps -----------------------------------------------------------------------------------------------
    def _fit_predictors(self, round_index: int):
        verified_acc = [(v["arch"], v["accuracy"]) for v in self.state.verified]
        acc_known = dict(self.accuracy_source.known())
        acc_known.update(verified_acc)
        lat_known = dict(self.latency_source.known())
        lat_known.update((v["arch"], v["latency_ms"]) for v in self.state.verified if v["latency_measured"])
        archs, accs = zip(*sorted(acc_known.items()))
        acc_model = self.make_accuracy_predictor()
        acc_model.fit(list(archs), np.array(accs), featurizer=self._featurizer(acc_model))
        archs, lats = zip(*sorted(lat_known.items()))
        lat_model = self.make_latency_predictor()
        lat_model.fit(list(archs), np.array(lats), featurizer=self._featurizer(lat_model))
        snapshot = self.run_dir.predictor_snapshot(round_index)
        acc_model.save(snapshot / "accuracy", source={"records": len(acc_known)})
        lat_model.save(snapshot / "latency", source={"records": len(lat_known)})
        return acc_model, lat_model

    def _pick_candidates(self, objective: PredictedObjective, round_index: int):
        """The ``candidates_per_round`` best unverified architectures by predicted reward, plus
        ``explore_per_round`` drawn at random among the rest of the round's proposals.

        Every round verifies something while the budget lasts: a controller whose proposals are all verified
        already (a collapsed policy) gets the unverified neighbours found by the local search, or, failing
        those, random unverified architectures.
        """
        done = {v["arch"] for v in self.state.verified}
        room = self.settings.max_trainings - self.state.trainings
        k = min(self.settings.candidates_per_round, room)
        if self.settings.local_search_steps > 0:
            self._local_search(objective, starts=max(k, 1), rng=np.random.default_rng([self.settings.seed,
                                                                                        round_index, 1]))
        best = objective.best(k, exclude=done)
        if len(best) < k:  # the extra samples stay in the cache, for the exploration pick
            best += self._unverified_samples(objective, k - len(best) + self.settings.explore_per_round,
                                             exclude=done | {s.arch.string for s in best},
                                             rng=np.random.default_rng([self.settings.seed, round_index, 2])
                                             )[: k - len(best)]
        taken = done | {s.arch.string for s in best}
        rest = [s for s in objective.cache.values() if s.arch.string not in taken]
        n_explore = min(self.settings.explore_per_round, room - len(best), len(rest))
        rng = np.random.default_rng([self.settings.seed, round_index])
        rest.sort(key=lambda s: s.arch.string)
        explore = [rest[i] for i in rng.choice(len(rest), size=n_explore, replace=False)] if n_explore > 0 else []
        return best + explore

    def _local_search(self, objective: PredictedObjective, *, starts: int, rng: np.random.Generator) -> None:
        """Hill-climbs on the predicted reward from the ``starts`` best architectures scored so far (verified
        ones included), moving to the best neighbour (:meth:`~hwnas.spaces.base.SearchSpace.neighbours`) while it
        improves, for at most ``local_search_steps`` moves each; everything it scores joins the objective's cache.

        Controllers are global optimisers of a cheap but rugged objective; a few greedy moves around their best
        proposals find the nearby predicted optimum that a policy still spreading its probability misses (local
        search on a predictor's acquisition function, as in BANANAS; White et al. 2021). It runs the same way
        for every controller, so comparisons stay fair.
        """
        for start in objective.best(starts):
            current, reward = start.arch, start.reward
            for _ in range(self.settings.local_search_steps):
                moves = self.space.neighbours(current, rng)
                if not moves:
                    break
                scores = objective(moves)
                i = int(np.argmax(scores))
                if scores[i] <= reward:
                    break
                current, reward = moves[i], float(scores[i])

    def _unverified_samples(self, objective: PredictedObjective, n: int, *, exclude: set[str],
                            rng: np.random.Generator):
        """Up to ``n`` random architectures outside ``exclude``, scored (fewer if the space runs out)."""
        found = self.space.sample_distinct(n, rng, exclude=exclude, max_draws=100 * n)
        if not found:
            return []
        objective(found)
        return [objective.cache[a.string] for a in found]

    def _verify_pending(self, *, round_index: int) -> None:
        done = {v["arch"] for v in self.state.verified}
        for string in list(self.state.pending):
            if self._out_of_budget():
                break
            if string not in done:
                arch = self.space.parse(string)
                self.on_event("verify", {"arch": string, "round": round_index, "trainings": self.state.trainings})
                result = self.accuracy_source.evaluate(arch)
                latency = self.latency_source.measure(arch)
                predicted = self.state.pending_predictions.get(string, [None, None])
                self.state.verified.append(asdict(Verified(
                    arch=string, accuracy=float(result["accuracy"]), latency_ms=float(latency["latency_ms"]),
                    latency_measured=bool(latency["measured"]), round=round_index,
                    predicted_accuracy=predicted[0], predicted_latency_ms=predicted[1])))
                done.add(string)
                self.on_event("verified", {**self.state.verified[-1], "best": self.best()})
            self.state.pending.remove(string)
            self._save()
        self.state.pending_predictions = {}

    # -- bookkeeping -----------------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        return self._elapsed_at_start + (time.monotonic() - self._session_start)

    def _out_of_budget(self) -> bool:
        if self.state.trainings >= self.settings.max_trainings:
            self.state.stop_reason = f"training budget spent ({self.settings.max_trainings})"
            return True
        if self.settings.time_budget_s is not None and self._elapsed() >= self.settings.time_budget_s:
            self.state.stop_reason = f"time budget spent ({self.settings.time_budget_s:.0f} s)"
            return True
        return False

    def _save(self) -> None:
        self.state.elapsed_s = self._elapsed()
        self.run_dir.save_state(self.state)

    def _diverse_sample(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """``n`` distinct architectures spread over the size range (stratified by MACs)."""
        from hwnas.profiling.sampling import stratified_sample

        featurizer = self._featurizer(self.make_latency_predictor())  # cached analytic MACs
        macs_column = featurizer.feature_names_.index("macs")

        def size(arch: Arch) -> float:
            return float(featurizer.transform([arch])[0, macs_column])

        return stratified_sample(self.space, n, rng=rng, size_fn=size)

    def _featurizer(self, predictor) -> ArchFeaturizer:
        """One featurizer per task setting for the whole run, so its unit statistics and feature rows are
        computed once instead of again for every predictor of every round."""
        key = (predictor.space, repr(sorted((predictor.space_options or {}).items())),
               tuple(predictor.input_shape), int(predictor.num_classes))
        if key not in self._featurizers:
            self._featurizers[key] = predictor.make_featurizer()
        return self._featurizers[key]

    def best(self) -> dict | None:
        """The verified architecture with the best accuracy within the budget (None if none fits)."""
        feasible = [v for v in self.state.verified if v["latency_ms"] <= self.settings.budget_ms]
        return max(feasible, key=lambda v: (v["accuracy"], -v["latency_ms"]), default=None)

    def _history_row(self, round_index: int, new: Sequence[dict]) -> dict:
        best = self.best()
        acc_true = [v["accuracy"] for v in new if v["predicted_accuracy"] is not None]
        acc_pred = [v["predicted_accuracy"] for v in new if v["predicted_accuracy"] is not None]
        lat_true = [v["latency_ms"] for v in new if v["predicted_latency_ms"] is not None]
        lat_pred = [v["predicted_latency_ms"] for v in new if v["predicted_latency_ms"] is not None]
        return {
            "round": round_index, "trainings_used": self.state.trainings, "elapsed_s": round(self._elapsed(), 1),
            "best_accuracy": None if best is None else best["accuracy"],
            "best_latency_ms": None if best is None else best["latency_ms"],
            "best_arch": None if best is None else best["arch"],
            "new_verified": len(new),
            "accuracy_mae_new": float(np.mean(np.abs(np.subtract(acc_true, acc_pred)))) if acc_true else None,
            "accuracy_kendall_new": kendall(acc_true, acc_pred) if len(acc_true) > 2 else None,
            "latency_mape_new": mape(lat_true, lat_pred) if lat_true else None,
        }

    def _result(self) -> dict:
        from hwnas.search.pareto import pareto_front

        best = self.best()
        verified = self.state.verified
        closest = sorted(verified, key=lambda v: v["latency_ms"])[:3] if best is None else []
        result = {
            "budget_ms": self.settings.budget_ms, "trainings_used": self.state.trainings,
            "rounds": self.state.round - 1, "stop_reason": self.state.stop_reason,
            "elapsed_s": round(self.state.elapsed_s, 1), "feasible": best is not None, "best": best,
            "closest": closest, "pareto_front": pareto_front(verified),
            "verified_within_budget": sum(v["latency_ms"] <= self.settings.budget_ms for v in verified),
            "latency_measured": all(v["latency_measured"] for v in verified),
        }
        self.run_dir.write_result(result, verified, budget_ms=self.settings.budget_ms)
        return result


class SearchError(HwnasError):
    """A search cannot start or continue."""
