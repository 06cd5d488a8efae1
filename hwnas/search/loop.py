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
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from hwnas.arch import Arch
from hwnas.cluster import SerialExecutor
from hwnas.predictors import AccuracyPredictor, ArchFeaturizer, LatencyPredictor
from hwnas.predictors.metrics import kendall, mape
from hwnas.search import acquisition
from hwnas.search.controllers import Controller
from hwnas.search.diagnostics import uninformative
from hwnas.search.estimates import Calibration
from hwnas.search.events import (Estimating, InitialPhase, LatencyMeasured, Learning, RoundDone, SearchEvent,
                                 Trained, TrainingStarted)
from hwnas.search.objective import PredictedObjective
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
from hwnas.spaces.base import SearchSpace

logger = logging.getLogger(__name__)

#: Rounds in a row that measure candidates and train none before the search stops (it goes on while the
#: training, measurement and time budgets last otherwise).
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
        make_accuracy_predictor: Returns an unfitted accuracy predictor.
        make_latency_predictor: Returns an unfitted latency predictor.
        callback: Receives the loop's events (:mod:`hwnas.search.events`), e.g. a
            :class:`~hwnas.search.events.SearchCallback`.
        estimator: Cheap accuracy estimates (a supernet) the accuracy predictor learns from beside the
            trainings, calibrated to their scale; the answer is still the best *trained* architecture.
        result_extras: Adds to the result before it is written (once): the runner's test accuracy and
            estimator facts.
        executor: Where trainings run (:mod:`hwnas.cluster`; this process, one at a time, by default).
    """

    def __init__(self, *, space: SearchSpace, controller: Controller, reward: Reward,
                 accuracy_source: AccuracySource, latency_source: LatencySource, settings: SearchSettings,
                 run_dir: RunDir, make_accuracy_predictor: Callable[[], AccuracyPredictor],
                 make_latency_predictor: Callable[[], LatencyPredictor],
                 callback: Callable[[SearchEvent], None] | None = None,
                 estimator: EstimateSource | None = None,
                 result_extras: Callable[[dict], dict] | None = None, executor=None) -> None:
        self.space = space
        self.estimator = estimator
        self.controller = controller
        self.reward = reward
        self.accuracy_source = accuracy_source
        self.latency_source = latency_source
        self.settings = settings
        self.run_dir = run_dir
        self.make_accuracy_predictor = make_accuracy_predictor
        self.make_latency_predictor = make_latency_predictor
        self.callback = callback or (lambda event: None)
        self.result_extras = result_extras
        self.executor = executor or SerialExecutor()
        self.state = run_dir.load_state() or SearchState()
        self._session_start = time.monotonic()
        self._elapsed_at_start = self.state.elapsed_s
        self._featurizers: dict[tuple, ArchFeaturizer] = {}
        self._pool_left = 0  # unverified architectures, not known to be too slow, in the last round's pool
        self._keys: dict[str, str] = {}  # equivalence keys of the strings seen (see _key)

    # -- public ----------------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Runs until the training or time budget is spent; returns the result (written once, with
        ``verified.csv`` and ``pareto.png``: :meth:`RunDir.write_result`)."""
        self._settle_checkpoint()
        if self.run_dir.controller_checkpoint.exists():
            self.controller.load(self.run_dir.controller_checkpoint)
        if self.state.finished and not self._out_of_budget():  # resumed with a larger budget
            self.state.finished = False
        if self.state.finished and self.run_dir.result_file.exists():
            return self.run_dir.read_result()  # nothing left to do: the stored answer stands
        if not self.state.finished:
            self._initial()
            if self.state.slots and (not self.state.pending or not any(self.state.slots)):
                self._round()  # a round killed after its last step but before it was recorded: record it
            while not self._out_of_budget():
                trained, queued, measured = self._round()
                # A round that measured candidates and found none within the budget taught the latency
                # predictor where the budget lies: the next rounds plan with that. The search stops after
                # MAX_EMPTY_ROUNDS such rounds in a row (counted from history.csv, so a resume counts the same).
                if trained == 0 and not self._out_of_budget() and (
                        queued == 0 or self._empty_rounds() >= MAX_EMPTY_ROUNDS):
                    self.state.stop_reason = (
                        "no unverified architecture left to try" if queued == 0 and not self._pool_left
                        else "no unverified architecture is likely to fit the budget" if queued == 0
                        else f"no new candidate fit the budget in {MAX_EMPTY_ROUNDS} rounds in a row "
                             f"({measured} measured in round {self.state.round - 1})")
                    break
            self.state.finished = True
            self._save()
        return self._result()

    # -- phases ----------------------------------------------------------------------------------------------
    def _initial(self) -> None:
        if self.state.round > 0:
            return
        if not self.state.pending and not self.state.slots:
            n = min(self.settings.initial_trainings, self.settings.max_trainings)
            rng = np.random.default_rng([self.settings.seed, 0])
            if self.estimator is not None:
                queue = self._initial_estimated_queue(n, rng)
            else:
                queue = self._initial_queue(n, rng)
            self._set_queue([queue], [n])
        self.callback(InitialPhase(count=self.state.slots[0] if self.state.slots else 0))
        self._work_queue(round_index=0)
        self._close_round(next_round=1)

    def _round(self) -> tuple[int, int, int]:
        """One round (resuming its queue if it was interrupted); returns how many candidates it trained, had
        in its queue and measured."""
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
            self._plan_round(objective, r)
            os.replace(self._next_checkpoint, self.run_dir.controller_checkpoint)
        queued = len(self.state.pending)
        self._work_queue(round_index=r)
        trained, measured = self.state.round_start or [self.state.trainings, self.state.measurements]
        new, new_measured = self.state.verified[trained:], self.state.measured[measured:]
        row = self._history_row(r, new, new_measured)
        self.run_dir.append_history(row)  # replaces round r's row if a killed session wrote it already
        self.callback(RoundDone(round=r, trainings_used=row["trainings_used"],
                                measurements_used=row["measurements_used"], new_measured=row["new_measured"],
                                new_over_budget=row["new_over_budget"], row=row))
        self._close_round(next_round=r + 1)
        return len(new), queued, len(new_measured)

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
        if (not self.state.pending or not any(self.state.slots)) and not self.state.training:
            self.state.pending, self.state.pending_group, self.state.slots = [], [], []
            self.state.pending_predictions, self.state.round_start = {}, []
        else:
            self.state.round_start = [self.state.trainings, self.state.measurements]
        self.state.round = next_round
        self._save()

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

    # -- steps -----------------------------------------------------------------------------------------------
    def _fit_predictors(self, round_index: int):
        verified_acc = [(v.arch, v.accuracy) for v in self.state.verified]
        acc_known = dict(self.accuracy_source.known())
        acc_known.update(verified_acc)
        if self.state.estimated:  # supernet estimates on the trainings' scale; a training wins where both exist
            calibrate = self._calibration()
            for string, estimate in self.state.estimated.items():
                acc_known.setdefault(string, calibrate(estimate))
        lat_known = self._known_latencies()
        lat_model = self._fit_latency(lat_known)
        snapshot = self.run_dir.predictor_snapshot(round_index)
        lat_model.save(snapshot / "latency", source={"records": len(lat_known)})
        if len(acc_known) < 2:  # nothing trained fits the budget yet: the round looks for fast candidates
            return _ConstantAccuracy(np.mean(list(acc_known.values())) if acc_known else 0.5), lat_model
        archs, accs = zip(*sorted(acc_known.items()))
        acc_model = self.make_accuracy_predictor()
        acc_model.fit(list(archs), np.array(accs), featurizer=self._featurizer(acc_model))
        acc_model.save(snapshot / "accuracy", source={"records": len(acc_known)})
        return acc_model, lat_model

    def _fit_latency(self, known: dict[str, float]):
        archs, lats = zip(*sorted(known.items()))
        model = self.make_latency_predictor()
        return model.fit(list(archs), np.array(lats), featurizer=self._featurizer(model))

    def _known_latencies(self) -> dict[str, float]:
        """Every real latency the run knows: the source's (device profile or table prior) and its own
        measurements (predicted fallbacks excluded)."""
        known = dict(self.latency_source.known())
        known.update((m.arch, m.latency_ms) for m in self.state.measured if m.measured)
        known.update((v.arch, v.latency_ms) for v in self.state.verified if v.latency_measured)
        return known

    def _initial_queue(self, n: int, rng: np.random.Generator) -> list[str]:
        """``n`` diverse architectures likely to fit the budget, in the order they are measured, followed by
        as many reserves (to replace those that turn out over the budget): a random pool is filtered by
        the latency predictor fit on the device's profile (or table prior), then picked evenly over the
        filtered pool's range of MACs."""
        pool = self._likely_feasible(max(50 * n, 200), n, rng)
        size = self._macs_fn()
        ordered = sorted(pool, key=lambda a: (size(a), a.string))
        picks = _spread(len(ordered), 2 * n, rng)
        return [ordered[i].string for i in picks]

    def _initial_estimated_queue(self, n: int, rng: np.random.Generator) -> list[str]:
        """With an estimator: ``initial_estimates`` architectures likely to fit the budget are estimated, and
        the ``n`` best estimated (then as many reserves) are measured and trained first."""
        count = max(self.settings.initial_estimates, 2 * n)
        pool = self._likely_feasible(max(50 * n, 4 * count, 200), count, rng)[:count]
        self._estimate([a.string for a in pool])
        ranked = sorted(pool, key=lambda a: (-self.state.estimated[a.string], a.string))
        return [a.string for a in ranked[:2 * n]]

    def _estimate(self, strings: Sequence[str], *, save: bool = True) -> None:
        """Estimates every architecture of ``strings`` not estimated yet. With ``save`` the state is saved
        every ten estimates and at the end; without, the caller's next state write commits them (a round's
        planning: a kill before its queue is saved must plan again from the same state, and finds the
        estimates in the evaluation store)."""
        todo = [s for s in dict.fromkeys(strings) if s not in self.state.estimated]
        if self.estimator is None or not todo:
            return
        self.callback(Estimating(count=len(todo), estimated=len(self.state.estimated)))
        for i, string in enumerate(todo, 1):
            self.state.estimated[string] = float(self.estimator.estimate(self.space.parse(string)))
            if save and i % 10 == 0:
                self._save()
        if save:
            self._save()

    def _calibration(self) -> Calibration:
        """The estimate-to-training calibration on the trained architectures that were also estimated."""
        estimated = self.state.estimated
        return Calibration.fit([(estimated[v.arch], v.accuracy) for v in self.state.verified
                                if v.arch in estimated])

    def _likely_feasible(self, draws: int, n: int, rng: np.random.Generator) -> list[Arch]:
        """Of ``draws`` random unverified architectures, those the latency predictor (fit on the profile or
        table prior) says likely fit the budget (at least ``n``: the most likely ones when too few do)."""
        pool = self.space.sample_distinct(draws, rng, exclude={v.arch for v in self.state.verified})
        known = self._known_latencies()
        if len(known) >= 2:
            predicted = self._fit_latency(known).predict(pool)
            latency = np.array([known.get(a.string, p) for a, p in zip(pool, predicted)])
            p_feasible = acquisition.feasibility(latency, self.settings.budget_ms, acquisition.DEFAULT_LOG_SIGMA)
            likely = [a for a, p in zip(pool, p_feasible) if p >= 0.5]
            if len(likely) < n:  # a budget near the fastest architectures: take the most likely ones
                order = np.argsort(-p_feasible, kind="stable")
                likely = [pool[i] for i in order[:max(n, len(likely))]]
            pool = likely
        return pool

    def _plan_round(self, objective: PredictedObjective, round_index: int) -> None:
        """Fills the round's queue: the pool (the controller's proposals, the local search's finds, the
        neighbours of the best verified architectures, ``random_per_round`` random ones) ranked by the
        acquisition among candidates likely to fit the budget; ``candidates_per_round`` slots for those,
        ``explore_per_round`` for the acquisition's best among the random ones alone.

        Every round has candidates while the space lasts: where the pool offers too few, random unverified
        architectures are scored and ranked too.
        """
        s = self.settings
        trained = self._trained_keys()
        room = s.max_trainings - self.state.trainings - len(self.state.training)
        k = min(s.candidates_per_round, room)
        e = min(s.explore_per_round, room - k)
        if s.local_search_steps > 0:
            self._local_search(objective, starts=max(k, 1),
                               rng=np.random.default_rng([s.seed, round_index, 1]))
        self._score_neighbours_of_best(objective, rng=np.random.default_rng([s.seed, round_index, 3]))
        randoms = set(self._unverified_samples(objective, s.random_per_round, exclude=set(),
                                               rng=np.random.default_rng([s.seed, round_index, 5]))
                      if s.random_per_round > 0 else ())
        known = self._known_latencies()
        sigma = acquisition.log_sigma([(m.predicted_latency_ms, m.latency_ms)
                                       for m in self.state.measured if m.measured])
        best = self.best()

        calibrate = self._calibration()

        def ranked(exclude: set[str]) -> list[acquisition.Candidate]:
            pool = [_candidate(c, self.state.estimated, calibrate) for c in objective.cache.values()
                    if self._key(c.arch.string) not in exclude]
            return acquisition.rank(pool, acquisition=s.acquisition, budget_ms=s.budget_ms, known_ms=known,
                                    sigma=sigma, best=None if best is None else best.accuracy,
                                    kappa=s.explore, min_feasibility=s.min_feasibility,
                                    rng=np.random.default_rng([s.seed, round_index, 4]))

        order = ranked(trained)
        wanted = s.measurements_per_round
        if len(order) < wanted:  # too few: random unverified architectures join the pool
            verified = {v.arch for v in self.state.verified}
            self._unverified_samples(objective, wanted - len(order), exclude=verified | {c.arch for c in order},
                                     rng=np.random.default_rng([s.seed, round_index, 2]))
            order = ranked(trained)
        if self.estimator is not None and s.estimates_per_round > 0:  # the best candidates get estimated:
            self._estimate([c.arch for c in order if c.arch not in self.state.estimated]  # rank them again
                           [:s.estimates_per_round], save=False)
            order = ranked(trained)
        untried = [c for c in objective.cache.values() if self._key(c.arch.string) not in trained
                   and known.get(c.arch.string, 0.0) <= s.budget_ms]
        self._pool_left = len(untried)
        if not order and best is None:  # nothing seems to fit yet: measure the fastest predicted, to be sure
            untried.sort(key=lambda c: (c.latency_ms, c.arch.string))
            order = [_candidate(c, self.state.estimated, calibrate) for c in untried[: 2 * max(k + e, 1)]]
        exploit, rest = order[:wanted], order[wanted:]
        if e > 0 and not rest:  # a small pool: exploration draws from what exploitation may not reach
            exploit, rest = order[:max(k, 1) * 2], order[max(k, 1) * 2:]
        taken = {c.arch for c in exploit}
        if randoms and e > 0:  # exploration: the acquisition's best among the random samples alone
            explore = [c for c in order if c.arch in randoms and c.arch not in taken][:10 * e]
        else:
            rng = np.random.default_rng([s.seed, round_index])
            explore = [rest[i] for i in rng.permutation(len(rest))[:10 * e]] if e > 0 else []
        self.state.pending_predictions = {c.arch: [c.accuracy, c.latency_ms] for c in exploit + explore}
        self._set_queue([[c.arch for c in exploit], [c.arch for c in explore]], [k, e])

    def _score_neighbours_of_best(self, objective: PredictedObjective, *, rng: np.random.Generator) -> None:
        """Scores every neighbour of the ``neighbours_of_best`` best verified feasible architectures: the
        region a search must exploit, whatever the controller proposes."""
        feasible = [v for v in self.state.verified if v.latency_ms <= self.settings.budget_ms]
        feasible.sort(key=lambda v: (-v.accuracy, v.arch))
        for record in feasible[: self.settings.neighbours_of_best]:
            moves = self.space.neighbours(self.space.parse(record.arch), rng)
            if moves:
                objective(moves)

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
                            rng: np.random.Generator) -> list[str]:
        """Scores up to ``n`` random architectures outside ``exclude`` (fewer if the space runs out)."""
        found = self.space.sample_distinct(n, rng, exclude=exclude, max_draws=100 * n)
        if found:
            objective(found)
        return [a.string for a in found]

    def _set_queue(self, groups: Sequence[Sequence[str]], slots: Sequence[int]) -> None:
        """The round's queue: each group's candidates in order, and the trainings each group may start."""
        seen: set[str] = set()
        self.state.pending, self.state.pending_group = [], []
        for index, group in enumerate(groups):
            for string in group:
                if string not in seen:
                    seen.add(string)
                    self.state.pending.append(string)
                    self.state.pending_group.append(index)
        self.state.slots = [int(n) for n in slots]
        self.state.round_start = [self.state.trainings, self.state.measurements]
        self._save()

    def _work_queue(self, *, round_index: int) -> None:
        """Measures the queue's candidates in order, selecting those within the budget while their group has
        slots left, then trains the selected ones (side by side with a parallel executor). Measurements and
        trainings never overlap, so no latency is taken beside a training. The state is saved after every
        measurement, the selection, and every finished training, so a resumed run continues exactly here."""
        self._select(round_index)
        self._train_selected(round_index)

    def _select(self, round_index: int) -> None:
        trained = self._trained_keys() | {self._key(t["arch"]) for t in self.state.training}
        prior = dict(self.latency_source.known())  # read once: a profile's records come from its files
        while self.state.pending and any(self.state.slots):
            if self._time_spent():  # nothing measured that could not be trained
                break
            string, group = self.state.pending[0], self.state.pending_group[0]
            worked = False
            if self.state.slots[group] > 0 and self._key(string) not in trained:
                before = self.state.measurements
                latency = self._latency(string, round_index, prior)
                if latency is None:  # the measurement budget is spent
                    break
                worked = self.state.measurements > before
                if latency["latency_ms"] <= self.settings.budget_ms:
                    self.state.training.append({"arch": string, "latency_ms": float(latency["latency_ms"]),
                                                "measured": bool(latency["measured"])})
                    trained.add(self._key(string))
                    self.state.slots[group] -= 1
                    worked = True
            self.state.pending.pop(0)
            self.state.pending_group.pop(0)
            if worked:  # a skipped candidate is skipped again after a resume: no write needed
                self._save()
            if not any(self.state.slots):
                break

    def _train_selected(self, round_index: int) -> None:
        """Trains the selected candidates through the executor; each finished training is recorded (and the
        state saved) as it comes back, and the round's records end in selection order whatever the order they
        finished in, so a parallel run's state is the serial run's."""
        todo = list(self.state.training)
        if not todo:
            return
        self._estimate([t["arch"] for t in todo])  # every trained architecture is estimated too: calibration
        jobs, finishers = zip(*(self._job(t["arch"]) for t in todo))
        first = len(self.state.verified)

        running = [0]  # trainings started and not back yet (a parallel executor runs several)

        def may_start(index: int) -> bool:
            # the training and time budgets only: the measurement budget stops measuring, never a selected
            # candidate's training
            if self.state.trainings + running[0] >= self.settings.max_trainings or self._time_spent():
                return False
            running[0] += 1
            self.callback(TrainingStarted(arch=todo[index]["arch"], round=round_index,
                                          trainings=self.state.trainings))
            return True

        order = {t["arch"]: i for i, t in enumerate(todo)}
        for index, output in self.executor.run(list(jobs), may_start=may_start):
            running[0] -= 1
            candidate = todo[index]
            result = finishers[index](self.space.parse(candidate["arch"]), output)
            predicted = self.state.pending_predictions.get(candidate["arch"], [None, None])
            self.state.verified.append(Verified(
                arch=candidate["arch"], accuracy=float(result["accuracy"]), latency_ms=candidate["latency_ms"],
                latency_measured=candidate["measured"], round=round_index, predicted_accuracy=predicted[0],
                predicted_latency_ms=predicted[1], measurements_used=self.state.measurements,
                elapsed_s=round(self._elapsed(), 2)))
            self.state.training.remove(candidate)
            self._save()
            self.callback(Trained(record=self.state.verified[-1], best=self.best(),
                                  measurements=self.state.measurements))
        batch = self.state.verified[first:]
        batch.sort(key=lambda v: order.get(v.arch, len(order)))
        self.state.verified[first:] = batch
        self._save()

    def _job(self, string: str):
        """The training of ``string`` as a job for the executor, and what turns its output into the accuracy
        source's ``{"accuracy": ...}`` (a source without jobs, or one that knows the answer, is asked here)."""
        arch = self.space.parse(string)
        make = getattr(self.accuracy_source, "job", None)
        job = make(arch) if make is not None else None
        if job is not None:
            return job, self.accuracy_source.finish
        return _LocalJob(self.accuracy_source.evaluate, arch), lambda arch, output: output

    def _latency(self, string: str, round_index: int, prior: dict[str, float]) -> dict | None:
        """The candidate's latency: known (``prior``: the profile or table prior, or measured by this run) or
        measured now (counted against ``max_measurements``; None when that budget is spent, which
        :meth:`_out_of_budget` then reports)."""
        for record in self.state.measured:
            if record.arch == string:
                return {"latency_ms": record.latency_ms, "measured": record.measured}
        if string in prior:
            return {"latency_ms": float(prior[string]), "measured": True}
        if self.state.measurements >= self.settings.measurement_cap:
            return None
        result = self.latency_source.measure(self.space.parse(string))
        predicted = self.state.pending_predictions.get(string, [None, None])[1]
        # saved with the queue's next step: a kill before that measures again (a profile or table look-up)
        self.state.measured.append(Measured(
            arch=string, latency_ms=float(result["latency_ms"]), round=round_index,
            measured=bool(result["measured"]), predicted_latency_ms=predicted))
        feasible = result["latency_ms"] <= self.settings.budget_ms
        self.callback(LatencyMeasured(arch=string, latency_ms=float(result["latency_ms"]), feasible=feasible,
                                      measurements=self.state.measurements))
        return {"latency_ms": float(result["latency_ms"]), "measured": bool(result["measured"])}

    # -- bookkeeping -----------------------------------------------------------------------------------------
    def _key(self, string: str) -> str:
        """The equivalence key of an architecture (:meth:`~hwnas.spaces.base.SearchSpace.equivalence_key`;
        the string itself when ``skip_equivalent`` is off): one training per key."""
        if not self.settings.skip_equivalent:
            return string
        key = self._keys.get(string)
        if key is None:
            key = self._keys[string] = self.space.equivalence_key(self.space.parse(string))
        return key

    def _trained_keys(self) -> set[str]:
        return {self._key(v.arch) for v in self.state.verified}

    def _elapsed(self) -> float:
        return self._elapsed_at_start + (time.monotonic() - self._session_start)

    def _out_of_budget(self) -> bool:
        if self.state.trainings >= self.settings.max_trainings:
            self.state.stop_reason = f"training budget spent ({self.settings.max_trainings})"
            return True
        if self.state.measurements >= self.settings.measurement_cap:
            self.state.stop_reason = f"measurement budget spent ({self.settings.measurement_cap})"
            return True
        return self._time_spent()

    def _empty_rounds(self) -> int:
        """Rounds in a row, up to the last one, that trained nothing (from ``history.csv``)."""
        count = 0
        for row in reversed(self.run_dir.history()):
            if row.get("new_verified") not in ("0", 0):
                break
            count += 1
        return count

    def _time_spent(self) -> bool:
        if self.settings.time_budget_s is not None and self._elapsed() >= self.settings.time_budget_s:
            self.state.stop_reason = f"time budget spent ({self.settings.time_budget_s:.0f} s)"
            return True
        return False

    def _save(self) -> None:
        self.state.elapsed_s = self._elapsed()
        self.run_dir.save_state(self.state)

    def _macs_fn(self) -> Callable[[Arch], float]:
        """MACs of an architecture, from the run's featurizer (cached analytic statistics)."""
        featurizer = self._featurizer(self.make_latency_predictor())
        return lambda arch: float(featurizer.feature([arch], "macs")[0])

    def _featurizer(self, predictor) -> ArchFeaturizer:
        """One featurizer per task for the whole run, so its unit statistics and feature rows are computed once
        instead of again for every predictor of every round."""
        if predictor.task not in self._featurizers:
            self._featurizers[predictor.task] = predictor.make_featurizer()
        return self._featurizers[predictor.task]

    def best(self) -> Verified | None:
        """The verified architecture with the best accuracy within the budget (None if none fits)."""
        feasible = [v for v in self.state.verified if v.latency_ms <= self.settings.budget_ms]
        return max(feasible, key=lambda v: (v.accuracy, -v.latency_ms), default=None)

    def _fastest(self, n: int) -> list[dict]:
        """The ``n`` fastest architectures the run measured or trained (accuracy None where untrained)."""
        seen = {v.arch: asdict(v) for v in self.state.verified}
        for m in self.state.measured:
            seen.setdefault(m.arch, {"arch": m.arch, "accuracy": None, "latency_ms": m.latency_ms,
                                     "latency_measured": m.measured})
        return sorted(seen.values(), key=lambda v: (v["latency_ms"], v["arch"]))[:n]

    def _history_row(self, round_index: int, new: Sequence[Verified], measured: Sequence[Measured]) -> dict:
        best = self.best()
        acc_true = [v.accuracy for v in new if v.predicted_accuracy is not None]
        acc_pred = [v.predicted_accuracy for v in new if v.predicted_accuracy is not None]
        lat_true = [m.latency_ms for m in measured if m.predicted_latency_ms is not None]
        lat_pred = [m.predicted_latency_ms for m in measured if m.predicted_latency_ms is not None]
        return {
            "round": round_index, "trainings_used": self.state.trainings, "elapsed_s": round(self._elapsed(), 1),
            "best_accuracy": None if best is None else best.accuracy,
            "best_latency_ms": None if best is None else best.latency_ms,
            "best_arch": None if best is None else best.arch,
            "new_verified": len(new), "measurements_used": self.state.measurements,
            "estimates_used": len(self.state.estimated),
            "new_measured": len(measured),
            "new_over_budget": sum(m.latency_ms > self.settings.budget_ms for m in measured),
            "accuracy_mae_new": float(np.mean(np.abs(np.subtract(acc_true, acc_pred)))) if acc_true else None,
            "accuracy_kendall_new": kendall(acc_true, acc_pred) if len(acc_true) > 2 else None,
            "latency_mape_new": mape(lat_true, lat_pred) if lat_true else None,
        }

    def _result(self) -> dict:
        from hwnas.search.pareto import pareto_front

        best = self.best()
        verified = [asdict(v) for v in self.state.verified]
        closest = self._fastest(3) if best is None else []
        result = {
            "budget_ms": self.settings.budget_ms, "trainings_used": self.state.trainings,
            "rounds": self.state.round - 1, "stop_reason": self.state.stop_reason,
            "elapsed_s": round(self.state.elapsed_s, 1), "feasible": best is not None,
            "best": None if best is None else asdict(best),
            "closest": closest, "pareto_front": pareto_front(verified),
            "verified_within_budget": sum(v["latency_ms"] <= self.settings.budget_ms for v in verified),
            "latency_measured": all(v["latency_measured"] for v in verified),
            "measurements_used": self.state.measurements,
            "trainings_over_budget": sum(v["latency_ms"] > self.settings.budget_ms for v in verified),
            "acquisition": self.settings.acquisition, "estimates_used": len(self.state.estimated),
        }
        warning = uninformative(verified, num_classes=self.settings.num_classes,
                                validation_size=getattr(self.accuracy_source, "validation_size", None))
        if warning:
            result["warning"] = warning
            logger.warning("%s", warning)
        if self.result_extras is not None:
            result.update(self.result_extras(result))
        self.run_dir.write_result(result, verified, budget_ms=self.settings.budget_ms)
        return result


def _candidate(scored, estimated: dict[str, float], calibrate: Calibration) -> acquisition.Candidate:
    """The acquisition's view of an architecture the objective scored: an estimated one's accuracy is its
    calibrated estimate (with the calibration's residual spread), not the predictor's."""
    string = scored.arch.string
    if string in estimated:
        return acquisition.Candidate(string, calibrate(estimated[string]), calibrate.std, scored.latency_ms)
    return acquisition.Candidate(string, scored.accuracy, scored.accuracy_std, scored.latency_ms)


class _LocalJob:
    """A training the driver runs itself (a table look-up, a stored record, a user's function)."""

    local = True

    def __init__(self, evaluate: Callable, arch: Arch) -> None:
        self.evaluate = evaluate
        self.arch = arch

    def __call__(self) -> dict:
        return self.evaluate(self.arch)


class _ConstantAccuracy:
    """The accuracy "predictor" of a round before two trainings fit the budget: one value for every
    architecture, so the reward and the acquisition order candidates by latency alone."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def predict_dist(self, archs: Sequence) -> tuple[np.ndarray, np.ndarray]:
        return np.full(len(archs), self.value), np.zeros(len(archs))


def _spread(count: int, n: int, rng: np.random.Generator) -> list[int]:
    """Up to ``n`` distinct indices of ``range(count)`` (items sorted by size): the first half one per equal
    bin of the range (a random item in each), then as many reserves picked the same way."""
    if count <= n:
        return list(rng.permutation(count))
    half = max(1, n // 2)
    picks: list[int] = []
    for _ in range(2):
        edges = np.linspace(0, count, half + 1).round().astype(int)
        for lo, hi in zip(edges[:-1], edges[1:]):
            free = [i for i in range(lo, max(hi, lo + 1)) if i not in picks and i < count]
            if free:
                picks.append(int(free[int(rng.integers(len(free)))]))
    return picks[:n]


