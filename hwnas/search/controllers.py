"""Controllers propose architectures and learn from the predicted objective; a registry holds them.

Every controller spends a number of *predicted* evaluations per call of :meth:`Controller.learn`, is seeded,
and checkpoints to a file so a search can resume. Here: ``ppo`` (sb3-contrib's MaskablePPO on the
Gymnasium environment, the default), and the baselines ``random`` and ``evolution`` (regularised/aging
evolution, Real et al. 2019).
"""

from __future__ import annotations

import abc
import collections
import json
import logging
import os
import pickle
from pathlib import Path

import numpy as np

from hwnas.io import atomic_path
from hwnas.registry import Registry
from hwnas.search.env import make_vec_env
from hwnas.search.objective import PredictedObjective
from hwnas.spaces.base import SearchSpace

logger = logging.getLogger(__name__)


class Controller(abc.ABC):
    """Base class of controllers.

    Args:
        space: The search space.
        seed: Seed of everything random in the controller.
    """

    name = ""

    def __init__(self, space: SearchSpace, *, seed: int = 0) -> None:
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    @abc.abstractmethod
    def learn(self, objective: PredictedObjective, n_archs: int) -> None:
        """Proposes about ``n_archs`` architectures, scores them with ``objective`` and learns from it."""

    def save(self, path: str | os.PathLike) -> None:
        """Checkpoints the controller's state to ``path`` (atomically)."""
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            pickle.dump(self.state_dict(), handle)

    def load(self, path: str | os.PathLike) -> None:
        """Restores a checkpoint written by :meth:`save`."""
        with open(path, "rb") as handle:
            self.load_state_dict(pickle.load(handle))

    def state_dict(self) -> dict:
        return {"name": self.name, "seed": self.seed, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.seed = state["seed"]
        self.rng.bit_generator.state = state["rng"]


CONTROLLERS: Registry[Controller] = Registry("controller")


def create_controller(name: str, space: SearchSpace, *, seed: int = 0, **kwargs) -> Controller:
    return CONTROLLERS.get(name)(space, seed=seed, **kwargs)


@CONTROLLERS.register("random")
class RandomController(Controller):
    """Random search: uniform samples, scored in batches. Learns nothing; the baseline every search must beat."""

    name = "random"

    def __init__(self, space: SearchSpace, *, seed: int = 0, batch_size: int = 256) -> None:
        super().__init__(space, seed=seed)
        self.batch_size = batch_size

    def learn(self, objective: PredictedObjective, n_archs: int) -> None:
        for start in range(0, n_archs, self.batch_size):
            objective([self.space.sample(self.rng) for _ in range(min(self.batch_size, n_archs - start))])


@CONTROLLERS.register("evolution")
class EvolutionController(Controller):
    """Regularised (aging) evolution: tournament selection, one mutation per child, the oldest dies.

    Args:
        population_size: Size of the population (P).
        sample_size: Tournament size (S).
        batch_size: Children made per batch (scored together).
    """

    name = "evolution"

    def __init__(self, space: SearchSpace, *, seed: int = 0, population_size: int = 64, sample_size: int = 16,
                 batch_size: int = 32) -> None:
        super().__init__(space, seed=seed)
        self.population_size = population_size
        self.sample_size = sample_size
        self.batch_size = batch_size
        self.population: collections.deque = collections.deque()

    def learn(self, objective: PredictedObjective, n_archs: int) -> None:
        spent = 0
        if len(self.population) < self.population_size:
            seeds = [self.space.sample(self.rng) for _ in range(self.population_size - len(self.population))]
            self.population.extend(zip(seeds, objective(seeds)))
            spent += len(seeds)
        else:  # predictors may have been refit: rescore the living population
            archs = [a for a, _ in self.population]
            self.population = collections.deque(zip(archs, objective(archs)))
        while spent < n_archs:
            members = list(self.population)
            children = []
            for _ in range(min(self.batch_size, n_archs - spent)):
                picks = self.rng.choice(len(members), size=min(self.sample_size, len(members)), replace=False)
                parent = max((members[i] for i in picks), key=lambda m: m[1])[0]
                children.append(self.space.mutate(parent, self.rng))
            for child, fitness in zip(children, objective(children)):
                self.population.append((child, fitness))
                self.population.popleft()
            spent += len(children)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "population": [(a.string, float(f)) for a, f in self.population]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.population = collections.deque((self.space.parse(s), f) for s, f in state["population"])


@CONTROLLERS.register("ppo")
class PPOController(Controller):
    """PPO with invalid-action masking (sb3-contrib ``MaskablePPO``) on :class:`~hwnas.search.env.ArchEnv`.

    Clipped surrogate objective, value baseline and entropy bonus as in Schulman et al. 2017. One episode builds
    one architecture, the reward arrives at its end (so ``gamma = 1``); ``n_envs`` environments step together and
    their finished architectures are scored in one batched predictor call.

    Args:
        n_envs: Parallel environments (architectures built at once).
        n_steps: Steps per environment per rollout.
        batch_size: Minibatch size of the PPO update.
        n_epochs: Passes over each rollout.
        learning_rate: Adam step size.
        clip_range: PPO clipping of the probability ratio.
        ent_coef: Weight of the entropy bonus.
        gae_lambda: GAE parameter.
        net_arch: Hidden layer sizes of the policy and value networks.
    """

    name = "ppo"

    def __init__(self, space: SearchSpace, *, seed: int = 0, n_envs: int = 32, n_steps: int = 32,
                 batch_size: int = 256, n_epochs: int = 4, learning_rate: float = 1e-3, clip_range: float = 0.2,
                 ent_coef: float = 0.01, gae_lambda: float = 0.95, net_arch: tuple[int, ...] = (64, 64)) -> None:
        super().__init__(space, seed=seed)
        self.hyperparameters = dict(n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs,
                                    learning_rate=learning_rate, clip_range=clip_range, ent_coef=ent_coef,
                                    gae_lambda=gae_lambda, gamma=1.0)
        self.n_envs = n_envs
        self.net_arch = list(net_arch)
        self.model = None
        self._objective: PredictedObjective | None = None
        self._pending_state: bytes | None = None

    def _score(self, archs):
        return self._objective(archs)

    def _ensure_model(self, objective: PredictedObjective) -> None:
        self._objective = objective
        if self.model is not None:
            return
        from sb3_contrib import MaskablePPO

        env = make_vec_env(self.space, self._score, n_envs=self.n_envs, seed=self.seed)
        self.model = MaskablePPO("MlpPolicy", env, seed=self.seed, verbose=0, device="cpu",
                                 policy_kwargs={"net_arch": self.net_arch}, **self.hyperparameters)
        if self._pending_state is not None:
            self._restore(self._pending_state)
            self._pending_state = None

    def learn(self, objective: PredictedObjective, n_archs: int) -> None:
        import torch

        self._ensure_model(objective)
        steps_per_arch = max(1.0, self._mean_episode_length())
        timesteps = int(np.ceil(n_archs * steps_per_arch / (self.n_envs * self.hyperparameters["n_steps"])))
        timesteps *= self.n_envs * self.hyperparameters["n_steps"]
        # The policy is tiny: one thread is ~10x faster than a thread pool on a busy 2-core machine.
        threads = torch.get_num_threads()
        numpy_state = np.random.get_state()
        torch.set_num_threads(1)
        try:
            # Each call starts from fresh episodes with torch's RNG derived from (seed, steps so far), so the
            # policy, optimiser and step count alone determine what follows: a resumed search proposes exactly
            # what an uninterrupted one would. stable-baselines3 draws from the global torch and numpy RNGs
            # (actions, minibatch order); both are seeded here and restored afterwards.
            run_seed = (self.seed * 1_000_003 + self.model.num_timesteps) % 2**32
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(run_seed)
                np.random.seed(run_seed)
                self.model._last_obs = self.model.env.reset()
                self.model._last_episode_starts = np.ones(self.n_envs, dtype=bool)
                self.model.learn(total_timesteps=timesteps, reset_num_timesteps=False)
        finally:
            np.random.set_state(numpy_state)
            torch.set_num_threads(threads)

    def _mean_episode_length(self) -> float:
        rng = np.random.default_rng(0)
        return float(np.mean([len(self.space.sample(rng)) for _ in range(64)]))

    # -- checkpoints -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.model is not None:
            state["policy"] = {k: v.cpu() for k, v in self.model.policy.state_dict().items()}
            state["optimizer"] = self.model.policy.optimizer.state_dict()
            state["num_timesteps"] = self.model.num_timesteps
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "policy" in state:
            if self.model is None:
                self._pending_state = state
            else:
                self._restore(state)

    def _restore(self, state: dict) -> None:
        self.model.policy.load_state_dict(state["policy"])
        self.model.policy.optimizer.load_state_dict(state["optimizer"])
        self.model.num_timesteps = state["num_timesteps"]
