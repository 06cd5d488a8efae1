"""The Gymnasium environment every controller plugs into: an episode builds one architecture.

One step = one decision of the space, in canonical order; decisions that do not exist for the choices made
so far (a block beyond a stage's depth) are skipped. The action space is ``Discrete(max choices)`` with an
action mask for decisions that have fewer choices (sb3-contrib's ``MaskablePPO`` reads ``action_masks()``).
The observation is the decisions so far (one-hot per decision) plus a one-hot of the current step. The reward
comes from an objective at the end of the episode; :class:`BatchedArchVecEnv` defers it so that all
architectures finished in one vectorised step are scored with one batched predictor call.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

from hwnas.arch import Arch
from hwnas.spaces.base import SearchSpace

ScoreFn = Callable[[Sequence[Arch]], np.ndarray]


class ArchEnv(gym.Env):
    """Builds one architecture of ``space`` per episode; reward = ``score([arch])[0]`` at the end.

    Args:
        space: The search space.
        score: Maps a batch of architectures to rewards. None defers the reward (``info["arch"]`` holds the
            finished architecture; the vectorised env fills the reward in).
    """

    metadata = {"render_modes": []}

    def __init__(self, space: SearchSpace, score: ScoreFn | None = None) -> None:
        super().__init__()
        self.space = space
        self.score = score
        self.decisions = list(space.decisions)
        self._sizes = [len(d.choices) for d in self.decisions]
        self._offsets = np.cumsum([0] + self._sizes)
        self.n_actions = max(self._sizes)
        obs_size = int(self._offsets[-1]) + len(self.decisions) + 1
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(obs_size,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.n_actions)
        self._chosen: dict[str, Any] = {}
        self._step = 0

    # -- episode ---------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._chosen = {}
        self._step = self._next_active(0)
        return self._observation(), {}

    def step(self, action):
        action = int(action)
        decision = self.decisions[self._step]
        if not 0 <= action < len(decision.choices):
            raise ValueError(f"action {action} is masked out for {decision.label} ({len(decision.choices)} choices)")
        self._chosen[decision.label] = decision.choices[action]
        self._step = self._next_active(self._step + 1)
        if self._step < len(self.decisions):
            return self._observation(), 0.0, False, False, {}
        arch = self.space.from_mapping(self._chosen)
        reward = float(self.score([arch])[0]) if self.score is not None else 0.0
        return self._observation(), reward, True, False, {"arch": arch}

    def action_masks(self) -> np.ndarray:
        """True for the valid actions of the current decision."""
        mask = np.zeros(self.n_actions, dtype=bool)
        if self._step < len(self.decisions):
            mask[: self._sizes[self._step]] = True
        else:
            mask[0] = True
        return mask

    # -- helpers ---------------------------------------------------------------------------------------------
    def _next_active(self, index: int) -> int:
        while index < len(self.decisions) and not self.space.is_active(self.decisions[index], self._chosen):
            index += 1
        return index

    def _observation(self) -> np.ndarray:
        obs = np.zeros(self.observation_space.shape, dtype=np.float32)
        for i, decision in enumerate(self.decisions):
            if decision.label in self._chosen:
                obs[self._offsets[i] + decision.index(self._chosen[decision.label])] = 1.0
        obs[int(self._offsets[-1]) + self._step] = 1.0
        return obs


def make_vec_env(space: SearchSpace, score: ScoreFn, *, n_envs: int = 16, seed: int = 0):
    """A :class:`BatchedArchVecEnv` of ``n_envs`` environments scored by ``score`` in batches."""
    env = BatchedArchVecEnv([lambda: ArchEnv(space, score=None) for _ in range(n_envs)], score)
    env.seed(seed)
    return env


def _batched_vec_env_class():
    from stable_baselines3.common.vec_env import DummyVecEnv

    class _BatchedArchVecEnv(DummyVecEnv):
        """A ``DummyVecEnv`` of deferred-reward :class:`ArchEnv` s whose finished episodes are scored together."""

        def __init__(self, env_fns, score: ScoreFn) -> None:
            super().__init__(env_fns)
            self.score = score

        def step_wait(self):
            obs, rewards, dones, infos = super().step_wait()
            finished = [i for i in range(self.num_envs) if dones[i]]
            if finished:
                scores = np.asarray(self.score([infos[i]["arch"] for i in finished]), dtype=np.float32)
                rewards[finished] = scores
            return obs, rewards, dones, infos

    return _BatchedArchVecEnv


class _LazyVecEnv:
    """Defers importing stable-baselines3 until a vectorised env is made."""

    def __call__(self, *args, **kwargs):
        return _batched_vec_env_class()(*args, **kwargs)


BatchedArchVecEnv = _LazyVecEnv()
