"""The baselines every comparison needs: random search and regularised (aging) evolution.

Neither learns step by step, so progressive mode changes only what is scored: the partial architectures on
the way to each proposal are scored with it (and may be verified), as the environment would score them.
"""

from __future__ import annotations

import collections

from hwnas.search.controllers.base import CONTROLLERS, Controller
from hwnas.search.objective import PredictedObjective
from hwnas.spaces.base import SearchSpace


@CONTROLLERS.register("random")
class RandomController(Controller):
    """Random search: uniform samples, scored in batches. Learns nothing; the baseline every search must beat."""

    name = "random"

    def __init__(self, space: SearchSpace, *, seed: int = 0, mode: str = "oneshot", batch_size: int = 256) -> None:
        super().__init__(space, seed=seed, mode=mode)
        self.batch_size = batch_size

    def learn(self, objective: PredictedObjective, n_archs: int) -> None:
        for start in range(0, n_archs, self.batch_size):
            self.score(objective, [self.space.sample(self.rng) for _ in range(min(self.batch_size, n_archs - start))])


@CONTROLLERS.register("evolution")
class EvolutionController(Controller):
    """Regularised (aging) evolution: tournament selection, one mutation per child, the oldest dies.

    Args:
        population_size: Size of the population (P).
        sample_size: Tournament size (S).
        batch_size: Children made per batch (scored together).
    """

    name = "evolution"

    def __init__(self, space: SearchSpace, *, seed: int = 0, mode: str = "oneshot", population_size: int = 64,
                 sample_size: int = 16, batch_size: int = 32) -> None:
        super().__init__(space, seed=seed, mode=mode)
        self.population_size = population_size
        self.sample_size = sample_size
        self.batch_size = batch_size
        self.population: collections.deque = collections.deque()

    def learn(self, objective: PredictedObjective, n_archs: int) -> None:
        spent = 0
        if len(self.population) < self.population_size:
            seeds = [self.space.sample(self.rng) for _ in range(self.population_size - len(self.population))]
            self.population.extend(zip(seeds, self.score(objective, seeds)))
            spent += len(seeds)
        else:  # predictors may have been refit: rescore the living population
            archs = [a for a, _ in self.population]
            self.population = collections.deque(zip(archs, self.score(objective, archs)))
        while spent < n_archs:
            members = list(self.population)
            children = []
            for _ in range(min(self.batch_size, n_archs - spent)):
                picks = self.rng.choice(len(members), size=min(self.sample_size, len(members)), replace=False)
                parent = max((members[i] for i in picks), key=lambda m: m[1])[0]
                children.append(self.space.mutate(parent, self.rng))
            for child, fitness in zip(children, self.score(objective, children)):
                self.population.append((child, fitness))
                self.population.popleft()
            spent += len(children)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "population": [(a.string, float(f)) for a, f in self.population]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.population = collections.deque((self.space.parse(s), f) for s, f in state["population"])
