"""What every part of a search shares: the run's space, settings, state and run folder, and the bookkeeping on them.

:class:`~hwnas.search.loop.SearchLoop` orchestrates; :class:`~hwnas.search.planning.Planner` decides what a
round measures and trains, :class:`~hwnas.search.verification.Verifier` measures and trains it, and
:mod:`hwnas.search.document` writes what the run found. Each of them reads and writes the run through one
:class:`RunContext`, so the state has one owner and is saved the same way everywhere.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np

from hwnas.arch import Arch
from hwnas.predictors import ArchFeaturizer
from hwnas.predictors.base import Predictor
from hwnas.search.estimates import Calibration
from hwnas.search.events import Estimating, SearchEvent
from hwnas.search.finals import finalist_stats
from hwnas.search.rundir import RunDir
from hwnas.search.state import EstimateSource, LatencySource, SearchSettings, SearchState, Verified
from hwnas.spaces.base import SearchSpace

#: The latency predictor is refit once the run knows this share more latencies than it was last fit on (the
#: latencies it knows are used as they are; the predictor only places the others): on NAS-Bench-201 a refit
#: every round was a quarter of a run's time, and most rounds add a few percent.
LATENCY_REFIT_GROWTH = 0.2


class RunContext:
    """The run's shared facts and bookkeeping.

    Args:
        space: The search space.
        settings: The loop's settings.
        run_dir: The run folder (its state is loaded here).
        latency_source: Real latency (its ``known`` records are the latency predictor's prior).
        make_latency_predictor: Returns an unfitted latency predictor.
        estimator: Cheap accuracy estimates (a supernet), or None.
        callback: Receives the loop's events.
    """

    def __init__(self, *, space: SearchSpace, settings: SearchSettings, run_dir: RunDir,
                 latency_source: LatencySource, make_latency_predictor: Callable[[], Predictor],
                 estimator: EstimateSource | None, callback: Callable[[SearchEvent], None]) -> None:
        self.space = space
        self.settings = settings
        self.run_dir = run_dir
        self.latency_source = latency_source
        self.make_latency_predictor = make_latency_predictor
        self.estimator = estimator
        self.callback = callback
        self.state = run_dir.load_state(resuming=True) or SearchState()
        self._session_start = time.monotonic()
        self._elapsed_at_start = self.state.elapsed_s
        self._keys: dict[str, str] = {}  # equivalence keys of the strings seen (see key)
        self._latency_model: tuple[int, Predictor] | None = None  # (records it was fit on, model)
        self._unit_stats = None  # parameters and MACs per unit (model_facts)
        self.final_reserve = 0  # trainings kept for the finalists' extra seeds (set by the loop)

    # -- identity --------------------------------------------------------------------------------------------
    def key(self, string: str) -> str:
        """The equivalence key of an architecture (:meth:`~hwnas.spaces.base.SearchSpace.equivalence_key`;
        the string itself when ``skip_equivalent`` is off): one training per key."""
        if not self.settings.skip_equivalent:
            return string
        key = self._keys.get(string)
        if key is None:
            key = self._keys[string] = self.space.equivalence_key(self.space.parse(string))
        return key

    def trained_keys(self) -> set[str]:
        return {self.key(v.arch) for v in self.state.verified}

    def model_facts(self, arch: str) -> dict[str, int]:
        """Parameters and MACs of ``arch`` built for the run's input shape and classes (empty where the run
        folder does not record them)."""
        from hwnas.predictors.features import TOTAL_STATS, UnitStatsCache

        config = self.run_dir.config
        if config.input_shape is None or config.num_classes is None:
            return {}
        if self._unit_stats is None:
            self._unit_stats = UnitStatsCache(self.space)  # counted once per distinct unit, on the meta device
        units = self.space.units(self.space.parse(arch), config.input_shape, config.num_classes)
        totals = sum(self._unit_stats(unit) for unit in units)
        return {"params": int(totals[TOTAL_STATS.index("params")]), "macs": int(totals[TOTAL_STATS.index("macs")])}

    # -- time and state --------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self._elapsed_at_start + (time.monotonic() - self._session_start)

    def time_spent(self) -> bool:
        if self.settings.time_budget_s is not None and self.elapsed() >= self.settings.time_budget_s:
            self.state.stop_reason = f"time budget spent ({self.settings.time_budget_s:.0f} s)"
            return True
        return False

    @property
    def search_trainings(self) -> int:
        """Trainings the search itself may spend: the budget less what the finalists' extra seeds keep, and
        less the extra-seed trainings already spent (by an earlier session's finals, before a resume with a
        larger budget)."""
        return max(1, self.settings.max_trainings - self.final_reserve - len(self.state.finals))

    def save(self) -> None:
        self.state.elapsed_s = self.elapsed()
        self.run_dir.save_state(self.state)

    # -- the answer ------------------------------------------------------------------------------------------
    def feasible(self) -> list[Verified]:
        return [v for v in self.state.verified if v.latency_ms <= self.settings.budget_ms]

    def best(self) -> Verified | None:
        """The answer: the finalist with the best mean accuracy over its seeds once every finalist has all its
        seeds (:mod:`hwnas.search.finals`), else the verified architecture with the best accuracy within the
        budget (None if none fits)."""
        stats = finalist_stats(self.state)
        if stats:
            chosen = stats[0]["arch"]
            return next(v for v in self.state.verified if v.arch == chosen)
        return max(self.feasible(), key=lambda v: (v.accuracy, -v.latency_ms), default=None)

    # -- latencies -------------------------------------------------------------------------------------------
    def known_latencies(self) -> dict[str, float]:
        """Every real latency the run knows: the source's (device profile or table prior) and its own
        measurements (predicted fallbacks excluded)."""
        known = dict(self.latency_source.known())
        known.update((m.arch, m.latency_ms) for m in self.state.measured if m.measured)
        known.update((v.arch, v.latency_ms) for v in self.state.verified if v.latency_measured)
        return known

    def fit_latency(self, known: dict[str, float]) -> Predictor:
        """A latency predictor fit on ``known``."""
        archs, lats = zip(*sorted(known.items()))
        model = self.make_latency_predictor()
        return model.fit(list(archs), np.array(lats), featurizer=self.featurizer(model))

    def latency_model(self, round_index: int, known: dict[str, float]) -> Predictor:
        """The round's latency predictor: refit when the run knows :data:`LATENCY_REFIT_GROWTH` more latencies
        than the last fit used, else that fit again. The fit is kept in the round's predictor snapshot and the
        state records which, so a resumed run reloads the very same model."""
        held = self._latency_model or self._reload_latency_model()
        if held is not None and len(known) < math.ceil(held[0] * (1 + LATENCY_REFIT_GROWTH)):
            self._latency_model = held
            return held[1]
        model = self.fit_latency(known)
        model.save(self.run_dir.predictor_snapshot(round_index) / "latency", source={"records": len(known)})
        self._latency_model = (len(known), model)
        self.state.latency_fit = [round_index, len(known)]
        return model

    def current_latency_model(self, known: dict[str, float]) -> Predictor:
        """The latency predictor the run uses now: the last fit (reloaded from its snapshot after a resume,
        never refit here, so a resumed round decides with the model the uninterrupted one had); a first fit on
        ``known`` if there is none yet."""
        held = self._latency_model or self._reload_latency_model()
        if held is None:
            return self.latency_model(max(self.state.round - 1, 0), known)
        self._latency_model = held
        return held[1]

    def _reload_latency_model(self) -> tuple[int, Predictor] | None:
        """The fit ``state.latency_fit`` names, from its snapshot (None: none, or it cannot be read -- the run
        then refits and goes on, a little differently)."""
        if not self.state.latency_fit:
            return None
        fit_round, records = self.state.latency_fit
        folder = self.run_dir.predictor_snapshot(fit_round) / "latency"
        try:
            return records, type(self.make_latency_predictor()).load(folder)
        except Exception:
            return None

    # -- features --------------------------------------------------------------------------------------------
    def featurizer(self, predictor: Predictor) -> ArchFeaturizer:
        """The process's featurizer of the predictor's task, so unit statistics and feature rows are computed
        once instead of again for every predictor of every round (and every run of a benchmark)."""
        return predictor.shared_featurizer()

    def macs_fn(self) -> Callable[[Arch], float]:
        """MACs of an architecture, from the run's featurizer (cached analytic statistics)."""
        featurizer = self.featurizer(self.make_latency_predictor())
        return lambda arch: float(featurizer.feature([arch], "macs")[0])

    # -- estimates -------------------------------------------------------------------------------------------
    def estimate(self, strings: Sequence[str], *, save: bool = True) -> None:
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
                self.save()
        if save:
            self.save()

    def calibration(self) -> Calibration:
        """The estimate-to-training calibration on the trained architectures that were also estimated."""
        estimated = self.state.estimated
        return Calibration.fit([(estimated[v.arch], v.accuracy) for v in self.state.verified
                                if v.arch in estimated])
