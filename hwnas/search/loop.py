"""The search loop: controller on predicted reward, real verification of the best candidates, refit, repeat;
then the finalists trained again with other seeds.

Data flows one way: sources of truth (device profile, evaluation store or tables) -> predictors -> predicted
objective -> controller -> candidates -> verification -> sources of truth. The loop orchestrates; the parts
live beside it: :mod:`~hwnas.search.planning` (what a round measures and trains),
:mod:`~hwnas.search.verification` (measuring and training it), :mod:`~hwnas.search.finals` (the noise-aware
answer), :mod:`~hwnas.search.document` (history and result), all on one :class:`~hwnas.search.context.RunContext`.

Resume: everything the loop knows lives in the run directory (``state.json``, written atomically after each
verification) and in the sources (a finished training or measurement is stored there the moment it ends). A
run stopped by Ctrl-C or ``kill -9`` resumes at the interrupted step; re-verifying a candidate whose training
had finished costs a store look-up, not a training.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hwnas.predictors.base import Predictor
from hwnas.search import finals
from hwnas.search.context import RunContext
from hwnas.search.controllers import Controller
from hwnas.search.document import build_result, history_row
from hwnas.search.events import FinalsStarted, InitialPhase, Learning, RoundDone, SearchEvent
from hwnas.search.objective import PredictedObjective
from hwnas.search.planning import Planner
from hwnas.search.result import SearchResult, Trial
from hwnas.search.reward import Reward
from hwnas.search.rundir import RunDir
from hwnas.search.state import (  # noqa: F401
    MEASUREMENTS_PER_TRAINING,
    AccuracySource,
    EstimateSource,
    LatencySource,
    Measured,
    SearchError,
    SearchSettings,
    SearchState,
    Verified,
)
from hwnas.search.verification import Verifier
from hwnas.spaces.base import SearchSpace

logger = logging.getLogger(__name__)

#: Rounds in a row that measure candidates and train none before a search that has found nothing within the
#: budget stops (once something fits, a round that trains nothing is followed by another, until the feasible
#: part of the space is exhausted or a budget is spent).
MAX_EMPTY_ROUNDS = 3


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
        make_accuracy_predictor: Returns an unfitted accuracy predictor (a
            :class:`~hwnas.predictors.base.Predictor`).
        make_latency_predictor: Returns an unfitted latency predictor.
        callback: Receives the loop's events (:mod:`hwnas.search.events`), e.g. a
            :class:`~hwnas.search.events.SearchCallback`.
        estimator: Cheap accuracy estimates (a supernet) the accuracy predictor learns from beside the
            trainings, calibrated to their scale; the answer is still the best *trained* architecture.
        result_extras: ``result_extras(best)`` adds fields to the result before it is written (once): the
            runner's test accuracy and estimator facts.
        executor: Where trainings run (:mod:`hwnas.cluster`; this process, one at a time, by default).
    """

    def __init__(self, *, space: SearchSpace, controller: Controller, reward: Reward,
                 accuracy_source: AccuracySource, latency_source: LatencySource, settings: SearchSettings,
                 run_dir: RunDir, make_accuracy_predictor: Callable[[], Predictor],
                 make_latency_predictor: Callable[[], Predictor],
                 callback: Callable[[SearchEvent], None] | None = None,
                 estimator: EstimateSource | None = None,
                 result_extras: Callable[[Trial | None], Mapping[str, Any]] | None = None, executor=None) -> None:
        self.controller = controller
        self.reward = reward
        self.accuracy_source = accuracy_source
        self.make_accuracy_predictor = make_accuracy_predictor
        self.callback = callback or (lambda event: None)
        self.result_extras = result_extras
        self.ctx = RunContext(space=space, settings=settings, run_dir=run_dir, latency_source=latency_source,
                              make_latency_predictor=make_latency_predictor, estimator=estimator,
                              callback=self.callback)
        self.planner = Planner(self.ctx)
        self.verifier = Verifier(self.ctx, accuracy_source, executor, refill=self.planner.refill)
        repeatable = _repeatable(accuracy_source)
        if settings.final_seeds and not repeatable:
            logger.warning("--final-seeds %d ignored: this accuracy source gives the same number for every seed "
                           "(a table), so repeats cannot change the answer; drop --final-seeds",
                           settings.final_seeds)
        self.final_plan = finals.plan(settings, repeatable=repeatable)
        self.ctx.final_reserve = self.final_plan[0] * self.final_plan[1]

    @property
    def state(self) -> SearchState:
        return self.ctx.state

    @property
    def settings(self) -> SearchSettings:
        return self.ctx.settings

    @property
    def space(self) -> SearchSpace:
        return self.ctx.space

    @property
    def run_dir(self) -> RunDir:
        return self.ctx.run_dir

    def best(self) -> Verified | None:
        """The answer so far (:meth:`RunContext.best`)."""
        return self.ctx.best()

    # -- public ----------------------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        """Runs until the training or time budget is spent (or the feasible space is exhausted), trains the
        finalists' extra seeds; returns the result (written once, with ``verified.csv`` and ``pareto.png``:
        :meth:`RunDir.write_result`)."""
        self._settle_checkpoint()
        if self.run_dir.controller_checkpoint.exists():
            self.controller.load(self.run_dir.controller_checkpoint)
        if self.state.finished and (not self._search_over() or self._finals_pending()):
            self.state.finished = False  # resumed with a larger budget, or finals a time budget cut short
        if self.state.finished and self.run_dir.result_file.exists():
            return _warned(self.run_dir.load_result())  # nothing left to do: the stored answer stands
        if not self.state.finished:
            self._initial()
            if self.state.slots and (not self.state.pending or not any(self.state.slots)):
                self._round()  # a round killed after its last step but before it was recorded: record it
            while not self._search_over():
                self._round()
            self._finals()
            self.state.finished = True
            self.ctx.save()
        return _warned(self._result())

    # -- phases ----------------------------------------------------------------------------------------------
    def _initial(self) -> None:
        if self.state.round > 0:
            return
        if not self.state.pending and not self.state.slots:
            self.planner.initial(min(self.settings.initial_trainings, self.ctx.search_trainings))
        self.callback(InitialPhase(count=self.state.slots[0] if self.state.slots else 0))
        self.verifier.work_queue(round_index=0)
        self._close_round(next_round=1)

    def _round(self) -> None:
        """One round (resuming its queue if it was interrupted); one that trained nothing may end the search
        (:meth:`_early_stop`)."""
        r = self.state.round
        if not self.state.pending and not self.state.slots:
            acc_model, lat_model = self._fit_predictors(r)
            objective = PredictedObjective(accuracy=acc_model.predict_dist, latency=lat_model.predict_dist,
                                           reward=self.reward, budget_ms=self.settings.budget_ms,
                                           explore=self.settings.explore)
            self.callback(Learning(round=r))
            self._observe_real_rewards()
            self.controller.learn(objective, self.settings.archs_per_round)
            # The learned controller and the round's queue are committed together: the checkpoint goes to a
            # side file, the state write of the queue records that round r has learned, then the side file
            # replaces the checkpoint. A kill anywhere in between resumes to the same controller (see
            # _settle_checkpoint): it never learns twice, and never continues from weights of another round.
            self.controller.save(self._next_checkpoint)
            self.state.learned_round = r
            self.planner.plan_round(objective, r)
            os.replace(self._next_checkpoint, self.run_dir.controller_checkpoint)
        queued = len(self.state.pending)
        self.verifier.work_queue(round_index=r)
        trained, measured = self.state.round_start or [len(self.state.verified), self.state.measurements]
        new, new_measured = self.state.verified[trained:], self.state.measured[measured:]
        row = history_row(self.ctx, r, new, new_measured)
        self.run_dir.append_history(row)  # replaces round r's row if a killed session wrote it already
        self.callback(RoundDone(round=r, trainings_used=row["trainings_used"],
                                measurements_used=row["measurements_used"], new_measured=row["new_measured"],
                                new_over_budget=row["new_over_budget"], row=row))
        if not new and not self._out_of_budget():
            # decided before the round is closed and saved with it: a resume never searches on after a stop
            reason = self._early_stop(r, queued, len(new_measured))
            if reason:
                self.state.stop_reason, self.state.search_done = reason, True
        self._close_round(next_round=r + 1)

    def _search_over(self) -> bool:
        return self.state.search_done or self._out_of_budget()

    def _finals_pending(self) -> bool:
        """Whether finals the run should have are not complete (a time budget stopped them)."""
        count, _ = self.final_plan
        return count > 0 and bool(finals.choose(self.state, self.settings, self.ctx.key, count)) and (
            not self.state.finalists or bool(finals.missing(self.state)))

    def _early_stop(self, round_index: int, queued: int, measured: int) -> str | None:
        """Why the search stops after a round that trained nothing, or None to go on: it stops when the
        feasible part of the space is exhausted, when nothing is left to try, when nothing within the budget
        has been found in :data:`MAX_EMPTY_ROUNDS` rounds in a row, or when as many rounds in a row neither
        measured nor trained anything; never while it has found architectures within the budget and untrained
        ones may remain and be reached."""
        left = self.planner.feasible_left()
        if left is False:
            within = len(self.ctx.feasible())
            return (f"feasible space exhausted: every architecture within the budget is trained ({within}); the "
                    f"others are measured, or predicted, over it" if within
                    else "feasible space exhausted: no architecture of the space fits the budget (measured, or "
                         "predicted, over it)")
        if queued == 0:
            return "no untrained architecture left to try"
        if self.best() is None and self._empty_rounds() >= MAX_EMPTY_ROUNDS:
            return (f"no architecture within the budget found in {MAX_EMPTY_ROUNDS} rounds in a row "
                    f"({measured} measured in round {round_index})")
        if self._empty_rounds(measured=True) >= MAX_EMPTY_ROUNDS:
            return f"no new candidate could be measured or trained in {MAX_EMPTY_ROUNDS} rounds in a row"
        return None

    def _finals(self) -> None:
        """Trains each finalist ``final_seeds`` more times (:mod:`hwnas.search.finals`); a kill during them
        resumes with the trainings still missing."""
        count, seeds = self.final_plan
        if count == 0 or self.ctx.time_spent():
            return
        state = self.state
        chosen = finals.choose(state, self.settings, self.ctx.key, count)
        if not chosen:
            return
        if chosen != state.finalists or seeds != state.final_seeds:
            state.finalists, state.final_seeds = chosen, seeds
            self.ctx.save()
        todo = finals.missing(state)
        if todo:
            self.callback(FinalsStarted(finalists=tuple(chosen), seeds=seeds))
            self.verifier.train_finalists(todo)
        if not finals.missing(state):
            reason = state.stop_reason.split("; finalists")[0]
            state.stop_reason = (f"{reason}; finalists: {len(chosen)} trained {seeds} more time"
                                 f"{'s' if seeds > 1 else ''} each, the answer chosen by the mean")

    @property
    def _next_checkpoint(self) -> Path:
        return self.run_dir.controller_checkpoint.with_name(self.run_dir.controller_checkpoint.name + ".next")

    def _settle_checkpoint(self) -> None:
        """Completes or undoes a checkpoint commit that a kill interrupted: a side file whose round the state
        recorded (the queue was saved) replaces the checkpoint; one the state never recorded is discarded, and
        the round learns again from the previous checkpoint, exactly as the first time."""
        side = self._next_checkpoint
        if not side.exists():
            return
        if self.state.learned_round == self.state.round and (self.state.slots or self.state.pending):
            os.replace(side, self.run_dir.controller_checkpoint)
        else:
            side.unlink()

    def _close_round(self, *, next_round: int) -> None:
        """Advances to ``next_round`` in one state write, clearing the queue if the round is done (a budget
        that stopped it mid-queue, or before the selected candidates were trained, keeps the rest for a resume
        with a larger budget)."""
        state = self.state
        if (not state.pending or not any(state.slots)) and not state.training:
            state.pending, state.pending_group, state.slots = [], [], []
            state.pending_predictions, state.round_start = {}, []
        else:
            state.round_start = [len(state.verified), state.measurements]
        state.round = next_round
        self.ctx.save()

    def _observe_real_rewards(self) -> None:
        """Hands a model-based controller (Dyna-Q) the real rewards of every trained architecture: the loop's
        reward of the measured accuracy and latency (no exploration bonus). Idempotent on the controller's
        side, so a resumed round may repeat it."""
        observe = getattr(self.controller, "observe", None)
        if observe is None or not self.state.verified:
            return
        verified = self.state.verified
        real = self.reward(np.array([v.accuracy for v in verified], dtype=float),
                           np.array([v.latency_ms for v in verified], dtype=float), self.settings.budget_ms)
        observe([(v.arch, float(r)) for v, r in zip(verified, real)])

    def _fit_predictors(self, round_index: int):
        verified_acc = [(v.arch, v.accuracy) for v in self.state.verified]
        acc_known = dict(self.accuracy_source.known())
        acc_known.update(verified_acc)
        if self.state.estimated:  # supernet estimates on the trainings' scale; a training wins where both exist
            calibrate = self.ctx.calibration()
            for string, estimate in self.state.estimated.items():
                acc_known.setdefault(string, calibrate(estimate))
        lat_model = self.ctx.latency_model(round_index, self.ctx.known_latencies())
        if len(acc_known) < 2:  # nothing trained fits the budget yet: the round looks for fast candidates
            return _ConstantAccuracy(np.mean(list(acc_known.values())) if acc_known else 0.5), lat_model
        archs, accs = zip(*sorted(acc_known.items()))
        acc_model = self.make_accuracy_predictor()
        acc_model.fit(list(archs), np.array(accs), featurizer=self.ctx.featurizer(acc_model))
        acc_model.save(self.run_dir.predictor_snapshot(round_index) / "accuracy",
                       source={"records": len(acc_known)})
        return acc_model, lat_model

    # -- budgets ---------------------------------------------------------------------------------------------
    def _out_of_budget(self) -> bool:
        settings = self.settings
        if len(self.state.verified) >= self.ctx.search_trainings:
            self.state.stop_reason = f"training budget spent ({settings.max_trainings})"
            return True
        if self.state.measurements >= settings.measurement_cap:
            self.state.stop_reason = f"measurement budget spent ({settings.measurement_cap})"
            return True
        return self.ctx.time_spent()

    def _empty_rounds(self, *, measured: bool = False) -> int:
        """Rounds in a row, up to the last one, that trained nothing (and, with ``measured``, measured nothing),
        from ``history.csv``."""
        count = 0
        for row in reversed(self.run_dir.history()):
            if row.get("new_verified") not in ("0", 0) or (measured and row.get("new_measured") not in ("0", 0)):
                break
            count += 1
        return count

    def _result(self) -> SearchResult:
        return build_result(self.ctx, validation_size=getattr(self.accuracy_source, "validation_size", None),
                               extras=self.result_extras)


def _warned(result: SearchResult) -> SearchResult:
    """Logs the result's warning (the run could not tell architectures apart, with what to do): once per session,
    for a fresh answer and a stored one alike; the command line does not repeat it."""
    if result.warning:
        logger.warning("%s", result.warning)
    return result


def _repeatable(source: AccuracySource) -> bool:
    """Whether the source's evaluations differ from seed to seed (it can train a replica)."""
    replica = getattr(source, "replica", None)
    return replica is not None and replica(1) is not None


class _ConstantAccuracy:
    """The accuracy "predictor" of a round before two trainings fit the budget: one value for every
    architecture, so the reward and the acquisition order candidates by latency alone."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def predict_dist(self, archs: Sequence) -> tuple[np.ndarray, np.ndarray]:
        return np.full(len(archs), self.value), np.zeros(len(archs))
