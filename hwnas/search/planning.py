"""What each round measures and trains: the round's queue, in three groups of training slots.

1. **Exploitation** (``candidates_per_round`` slots): the pool -- the controller's proposals, the local
   search's finds, the neighbours of the best trained architectures and ``random_per_round`` random ones --
   ranked by the acquisition among candidates likely to fit the budget (:mod:`hwnas.search.acquisition`).
2. **Exploration** (``explore_per_round`` slots): candidates chosen for information, not exploitation
   (:data:`~hwnas.search.acquisition.EXPLORATIONS`), among the round's random samples likely to fit the budget, so that a search, and
   each seed of it, can leave the region its first good trainings made the predictor sure of.
3. **Fallback** (no slots of its own): when the first two run out of candidates within the budget, the
   slots they leave are filled from the acquisition's best random architectures the latency predictor places
   under the budget, then uniformly from architectures measured within it, then the fastest predicted. A
   round never ends short while the space has untrained architectures that may fit: the search stops early
   only when the feasible part of the space is exhausted (:meth:`Planner.feasible_left`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hwnas.arch import Arch
from hwnas.search import acquisition
from hwnas.search.context import RunContext
from hwnas.search.estimates import Calibration
from hwnas.search.objective import PredictedObjective, Scored

#: Slot groups of a round's queue (``SearchState.pending_group``).
EXPLOIT, EXPLORE, FALLBACK = 0, 1, 2
#: Spaces up to this size are enumerated to tell whether untrained architectures within the budget remain.
ENUMERABLE = 100_000
#: A fallback candidate must be at least this likely to fit the budget (by the latency predictor).
FALLBACK_FEASIBILITY = 0.5
#: Untrained architectures less likely than this to fit the budget (by the latency predictor with the larger of
#: its default and its measured error, not measured) count as over it when the search tells whether the feasible
#: part of the space is exhausted. At 0.01 one run of 48 on NAS-Bench-201 stopped with one class left.
EXHAUSTED_FEASIBILITY = 0.001

class Planner:
    """Fills the run's queue: the initial trainings, then each round's (see the module's description)."""

    def __init__(self, context: RunContext) -> None:
        self.ctx = context
        self._classes: dict[str, list[str]] | None = None  # equivalence key -> strings, of a small space

    # -- the initial trainings -------------------------------------------------------------------------------
    def initial(self, n: int) -> None:
        """Queues ``n`` initial trainings (and as many reserves)."""
        rng = np.random.default_rng([self.ctx.settings.seed, 0])
        queue = self._initial_estimated_queue(n, rng) if self.ctx.estimator is not None \
            else self._initial_queue(n, rng)
        self.set_queue([queue], [n])

    def _initial_queue(self, n: int, rng: np.random.Generator) -> list[str]:
        """``n`` diverse architectures likely to fit the budget, in the order they are measured, followed by
        as many reserves (to replace those that turn out over the budget): a random pool is filtered by
        the latency predictor fit on the device's profile (or table prior), then picked evenly over the
        filtered pool's range of MACs."""
        pool = self._likely_feasible(max(50 * n, 200), n, rng)
        size = self.ctx.macs_fn()
        ordered = sorted(pool, key=lambda a: (size(a), a.string))
        picks = _spread(len(ordered), 2 * n, rng)
        return [ordered[i].string for i in picks]

    def _initial_estimated_queue(self, n: int, rng: np.random.Generator) -> list[str]:
        """With an estimator: ``initial_estimates`` architectures likely to fit the budget are estimated, and
        the ``n`` best estimated (then as many reserves) are measured and trained first."""
        count = max(self.ctx.settings.initial_estimates, 2 * n)
        pool = self._likely_feasible(max(50 * n, 4 * count, 200), count, rng)[:count]
        self.ctx.estimate([a.string for a in pool])
        ranked = sorted(pool, key=lambda a: (-self.ctx.state.estimated[a.string], a.string))
        return [a.string for a in ranked[:2 * n]]

    def _likely_feasible(self, draws: int, n: int, rng: np.random.Generator) -> list[Arch]:
        """Of ``draws`` random unverified architectures, those the latency predictor (fit on the profile or
        table prior) says likely fit the budget (at least ``n``: the most likely ones when too few do)."""
        ctx = self.ctx
        pool = ctx.space.sample_distinct(draws, rng, exclude={v.arch for v in ctx.state.verified})
        known = ctx.known_latencies()
        if len(known) >= 2:
            p_feasible = self._p_feasible(pool, ctx.latency_model(0, known), known)
            likely = [a for a, p in zip(pool, p_feasible) if p >= 0.5]
            if len(likely) < n:  # a budget near the fastest architectures: take the most likely ones
                order = np.argsort(-p_feasible, kind="stable")
                likely = [pool[i] for i in order[:max(n, len(likely))]]
            pool = likely
        return pool

    def _p_feasible(self, pool: Sequence[Arch], model, known: dict[str, float]) -> np.ndarray:
        """Probability that each architecture of ``pool`` fits the budget: its known latency where there is one,
        else ``model``'s prediction, with the default log-scale error."""
        latency = np.array([known.get(a.string, p) for a, p in zip(pool, model.predict(pool))])
        return acquisition.feasibility(latency, self.ctx.settings.budget_ms, acquisition.DEFAULT_LOG_SIGMA)

    # -- a round ---------------------------------------------------------------------------------------------
    def plan_round(self, objective: PredictedObjective, round_index: int) -> None:
        """Fills the round's queue: exploitation, exploration and fallback (the module's description).

        Every round has candidates while the space lasts: where the pool offers too few, random unverified
        architectures are scored and ranked too.
        """
        ctx, s = self.ctx, self.ctx.settings
        trained = ctx.trained_keys()
        room = ctx.search_trainings - len(ctx.state.verified) - len(ctx.state.training)
        k = min(s.candidates_per_round, room)
        e = min(s.explore_per_round, room - k)
        if s.local_search_steps > 0:
            self._local_search(objective, starts=max(k, 1), rng=np.random.default_rng([s.seed, round_index, 1]))
        self._score_neighbours_of_best(objective, rng=np.random.default_rng([s.seed, round_index, 3]))
        randoms = set(self._unverified_samples(objective, s.random_per_round, exclude=set(),
                                               rng=np.random.default_rng([s.seed, round_index, 5]))
                      if s.random_per_round > 0 else ())
        known = ctx.known_latencies()
        sigma = acquisition.log_sigma([(m.predicted_latency_ms, m.latency_ms)
                                       for m in ctx.state.measured if m.measured])
        best = ctx.best()
        calibrate = ctx.calibration()

        def ranked(exclude: set[str], *, pool: Sequence[Scored] | None = None,
                   min_feasibility: float = s.min_feasibility) -> list[acquisition.Candidate]:
            scored = objective.cache.values() if pool is None else pool
            candidates = [_candidate(c, ctx.state.estimated, calibrate) for c in scored
                          if ctx.key(c.arch.string) not in exclude]
            return acquisition.rank(candidates, acquisition=s.acquisition, budget_ms=s.budget_ms, known_ms=known,
                                    sigma=sigma, best=None if best is None else best.accuracy,
                                    kappa=s.explore, min_feasibility=min_feasibility,
                                    rng=np.random.default_rng([s.seed, round_index, 4]))

        order = ranked(trained)
        wanted = s.measurements_per_round
        if len(order) < wanted:  # too few: random unverified architectures join the pool
            verified = {v.arch for v in ctx.state.verified}
            self._unverified_samples(objective, wanted - len(order), exclude=verified | {c.arch for c in order},
                                     rng=np.random.default_rng([s.seed, round_index, 2]))
            order = ranked(trained)
        if ctx.estimator is not None and s.estimates_per_round > 0:  # the best candidates get estimated:
            ctx.estimate([c.arch for c in order if c.arch not in ctx.state.estimated]  # rank them again
                         [:s.estimates_per_round], save=False)
            order = ranked(trained)
        untried = [c for c in objective.cache.values() if ctx.key(c.arch.string) not in trained
                   and known.get(c.arch.string, 0.0) <= s.budget_ms]
        if not order and best is None:  # nothing seems to fit yet: measure the fastest predicted, to be sure
            untried.sort(key=lambda c: (c.latency_ms, c.arch.string))
            order = [_candidate(c, ctx.state.estimated, calibrate) for c in untried[: 2 * max(k + e, 1)]]
        exploit, rest = order[:wanted], order[wanted:]
        if e > 0 and not rest:  # a small pool: exploration draws from what exploitation may not reach
            exploit, rest = order[:max(k, 1) * 2], order[max(k, 1) * 2:]
        taken = {c.arch for c in exploit}
        explore: list[acquisition.Candidate] = []
        if e > 0:
            pool = [c for c in order if c.arch in randoms and c.arch not in taken] if randoms else rest
            explore = self._explore(pool, e, best=None if best is None else best.accuracy,
                                    rng=np.random.default_rng([s.seed, round_index]))
        queued = taken | {c.arch for c in explore}
        fallback = self._fallback(objective, ranked, randoms, untried, known=known, exclude=trained,
                                  queued=queued, count=k + e, calibrate=calibrate,
                                  rng=np.random.default_rng([s.seed, round_index, 6]))
        ctx.state.pending_predictions = {c.arch: [c.accuracy, c.latency_ms] for c in exploit + explore + fallback}
        self.set_queue([[c.arch for c in exploit], [c.arch for c in explore], [c.arch for c in fallback]],
                       [k, e, 0])

    def _explore(self, pool: Sequence[acquisition.Candidate], count: int, *, best: float | None,
                 rng: np.random.Generator) -> list[acquisition.Candidate]:
        """Up to ``10 * count`` exploration candidates (reserves for those over the budget), most informative
        first by ``explore_by``."""
        s = self.ctx.settings
        if not pool:
            return []
        mu = np.array([c.accuracy for c in pool])
        sd = np.array([c.accuracy_std for c in pool])
        value = acquisition.ACQUISITIONS.get(s.acquisition)(mu, sd, best, s.explore, rng)
        distance = self._distance([c.arch for c in pool])
        order = acquisition.EXPLORATIONS.get(s.explore_by)(pool, value=value, distance=distance, rng=rng)
        return [pool[i] for i in order[:10 * count]]

    def _distance(self, strings: Sequence[str]) -> np.ndarray:
        """Decisions by which each architecture differs from the nearest trained one (half the L1 distance of
        the spaces' one-hot encodings)."""
        space = self.ctx.space
        trained = [v.arch for v in self.ctx.state.verified]
        if not trained or not strings:
            return np.zeros(len(strings))
        a = np.stack([space.encode(space.parse(x)) for x in strings]).astype(np.float32)
        b = np.stack([space.encode(space.parse(x)) for x in trained]).astype(np.float32)
        # |a - b| summed over one-hot columns = |a| + |b| - 2 a.b for 0/1 vectors
        l1 = a.sum(1)[:, None] + b.sum(1)[None, :] - 2 * a @ b.T
        return l1.min(axis=1) / 2

    def _fallback(self, objective: PredictedObjective, ranked, randoms: set[str], untried: Sequence[Scored], *,
                  known: dict[str, float], exclude: set[str], queued: set[str], count: int, calibrate: Calibration,
                  rng: np.random.Generator) -> list[acquisition.Candidate]:
        """What fills the round's slots when exploitation and exploration run out of candidates within the
        budget: the acquisition's best random samples the latency predictor places under the budget, then the
        untrained architectures known to fit it (in random order; no measurement needed), then the fastest
        predicted untried ones, two per slot (a predictor that places everything over the budget may be
        wrong)."""
        ctx, s = self.ctx, self.ctx.settings
        if count <= 0:
            return []
        exclude = exclude | {ctx.key(a) for a in queued}
        pool = [c for c in objective.cache.values() if c.arch.string in randoms]
        likely = ranked(exclude, pool=pool, min_feasibility=FALLBACK_FEASIBILITY)[:s.measurements_per_round]
        seen = exclude | {ctx.key(c.arch) for c in likely}
        fits = sorted({ctx.key(a): a for a, ms in sorted(known.items())
                       if ms <= s.budget_ms and ctx.key(a) not in seen}.values())
        fits = [fits[i] for i in rng.permutation(len(fits))][:s.measurements_per_round]  # a profile may hold many
        if fits:
            objective([ctx.space.parse(a) for a in fits])  # their predictions, for the round's history
        seen |= {ctx.key(a) for a in fits}
        fastest = sorted((c for c in untried if ctx.key(c.arch.string) not in seen and c.arch.string not in known),
                         key=lambda c: (c.latency_ms, c.arch.string))[:2 * count]
        return likely + [_candidate(c, ctx.state.estimated, calibrate)
                         for c in [objective.cache[a] for a in fits] + fastest]

    def remaining(self) -> list[str] | None:
        """One string per untrained equivalence class of the space that may still fit the budget -- a member
        known to fit it, or else the unmeasured member the round's latency predictor places fastest, if at
        least :data:`EXHAUSTED_FEASIBILITY` likely to fit -- the unmeasured ones first, fastest predicted
        first; None when the space is too large to enumerate (:data:`ENUMERABLE`). Members of a class compute
        one function but may not run equally fast (a device that executes dead edges), so one member measured
        over the budget does not rule out its class."""
        ctx = self.ctx
        if ctx.space.size() > ENUMERABLE:
            return None
        if self._classes is None:
            classes: dict[str, list[str]] = {}
            for arch in ctx.space.enumerate():
                classes.setdefault(ctx.key(arch.string), []).append(arch.string)
            self._classes = classes
        budget = ctx.settings.budget_ms
        known = ctx.known_latencies()
        trained = ctx.trained_keys()
        within, members, owner = [], [], []
        for index, (key, strings) in enumerate(self._classes.items()):
            if key in trained:
                continue
            fits = next((a for a in strings if a in known and known[a] <= budget), None)
            if fits is not None:
                within.append(fits)
                continue
            for string in strings:
                if string not in known:
                    members.append(string)
                    owner.append(index)
        if not members:
            return within
        predicted = ctx.current_latency_model(known).predict(members)
        sigma = max(acquisition.DEFAULT_LOG_SIGMA, acquisition.log_sigma(
            [(m.predicted_latency_ms, m.latency_ms) for m in ctx.state.measured if m.measured]))
        likely = acquisition.feasibility(predicted, budget, sigma) >= EXHAUSTED_FEASIBILITY
        fastest: dict[int, int] = {}
        for i in np.argsort(predicted, kind="stable"):
            if likely[i]:
                fastest.setdefault(owner[i], int(i))
        order = sorted(fastest.values(), key=lambda i: (predicted[i], members[i]))
        return [members[i] for i in order] + within

    def refill(self, round_index: int) -> list[str]:
        """Candidates for a round whose queue ran out with slots left: up to ``measurements_per_round`` of
        :meth:`remaining` (or, in a space too large to enumerate, random unverified architectures the latency
        predictor places under the budget, most likely first)."""
        ctx, s = self.ctx, self.ctx.settings
        left = self.remaining()
        if left is None:
            rng = np.random.default_rng([s.seed, round_index, 7])
            pool = ctx.space.sample_distinct(20 * s.measurements_per_round, rng,
                                             exclude={v.arch for v in ctx.state.verified})
            trained = ctx.trained_keys()
            pool = [a for a in pool if ctx.key(a.string) not in trained]
            known = ctx.known_latencies()
            if not pool:
                return []
            p = self._p_feasible(pool, ctx.current_latency_model(known), known)
            order = [i for i in np.argsort(-p, kind="stable") if p[i] >= FALLBACK_FEASIBILITY]
            left = [pool[i].string for i in order]
        return left[:s.measurements_per_round]

    def feasible_left(self) -> bool | None:
        """Whether the space may still hold an untrained architecture within the budget (:meth:`remaining`);
        None when the space is too large to tell."""
        left = self.remaining()
        return None if left is None else bool(left)

    def _score_neighbours_of_best(self, objective: PredictedObjective, *, rng: np.random.Generator) -> None:
        """Scores every neighbour of the ``neighbours_of_best`` best verified feasible architectures: the
        region a search must exploit, whatever the controller proposes."""
        feasible = sorted(self.ctx.feasible(), key=lambda v: (-v.accuracy, v.arch))
        for record in feasible[: self.ctx.settings.neighbours_of_best]:
            moves = self.ctx.space.neighbours(self.ctx.space.parse(record.arch), rng)
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
            for _ in range(self.ctx.settings.local_search_steps):
                moves = self.ctx.space.neighbours(current, rng)
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
        found = self.ctx.space.sample_distinct(n, rng, exclude=exclude, max_draws=100 * n)
        if found:
            objective(found)
        return [a.string for a in found]

    def set_queue(self, groups: Sequence[Sequence[str]], slots: Sequence[int]) -> None:
        """The round's queue: each group's candidates in order, and the trainings each group may start."""
        state = self.ctx.state
        seen: set[str] = set()
        state.pending, state.pending_group = [], []
        for index, group in enumerate(groups):
            for string in group:
                if string not in seen:
                    seen.add(string)
                    state.pending.append(string)
                    state.pending_group.append(index)
        state.slots = [int(n) for n in slots]
        state.round_start = [len(state.verified), state.measurements]
        self.ctx.save()


def _candidate(scored: Scored, estimated: dict[str, float], calibrate: Calibration) -> acquisition.Candidate:
    """The acquisition's view of an architecture the objective scored: an estimated one's accuracy is its
    calibrated estimate (with the calibration's residual spread), not the predictor's."""
    string = scored.arch.string
    if string in estimated:
        return acquisition.Candidate(string, calibrate(estimated[string]), calibrate.std, scored.latency_ms)
    return acquisition.Candidate(string, scored.accuracy, scored.accuracy_std, scored.latency_ms)


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
