"""Batched episodes on :class:`~hwnas.search.env.ArchEnv` for the hand-written controllers.

``count`` environments run in lock-step; a policy chooses the actions of every running episode at once, and
every architecture the environments hand out in one tick (finished ones, and partial ones in progressive
mode) is scored in *one* objective call. Rewards are the environment's: the improvement over the episode's
previous score (:class:`~hwnas.search.env.RewardShaper`'s rule), so one-shot episodes get their score at the
last step and progressive ones get improvements that add up to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from hwnas.arch import Arch
from hwnas.search.env import ArchEnv
from hwnas.spaces.base import SearchSpace

ActFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``act(alive, positions, previous_actions, masks) -> actions`` for the running episodes ``alive``."""


@dataclass
class Episode:
    """One episode: per step the decision index, the action, the number of valid actions; and what was scored.

    Attributes:
        positions: Index in ``space.decisions`` of each step's decision.
        actions: Action taken at each step.
        n_valid: Valid actions at each step (valid actions are always the first ``n_valid``).
        score_steps: Steps at which an architecture was scored.
        scored: The architectures scored at those steps (the last one is the episode's architecture).
        rewards: Reward of each step.
    """

    positions: list[int] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    n_valid: list[int] = field(default_factory=list)
    score_steps: list[int] = field(default_factory=list)
    scored: list[Arch] = field(default_factory=list)
    rewards: np.ndarray | None = None

    @property
    def arch(self) -> Arch:
        return self.scored[-1]

    @property
    def previous_actions(self) -> np.ndarray:
        """The action before each step (-1 at the first)."""
        return np.array([-1] + self.actions[:-1], dtype=np.int64)

    def set_scores(self, scores: Sequence[float]) -> None:
        """Rewards from the scores of :attr:`scored`: each score's improvement over the previous one."""
        rewards = np.zeros(len(self.actions), dtype=np.float64)
        last = 0.0
        for step, value in zip(self.score_steps, scores):
            rewards[step] = float(value) - last
            last = float(value)
        self.rewards = rewards

    def to_state(self) -> dict:
        return {"positions": self.positions, "actions": self.actions, "n_valid": self.n_valid,
                "score_steps": self.score_steps, "scored": [a.string for a in self.scored],
                "rewards": None if self.rewards is None else self.rewards.tolist()}

    @classmethod
    def from_state(cls, state: dict, space: SearchSpace) -> "Episode":
        episode = cls(list(state["positions"]), list(state["actions"]), list(state["n_valid"]),
                      list(state["score_steps"]), [space.parse(s) for s in state["scored"]])
        episode.rewards = None if state["rewards"] is None else np.asarray(state["rewards"], dtype=np.float64)
        return episode


def run_episodes(space: SearchSpace, score: Callable[[Sequence[Arch]], np.ndarray], count: int, act: ActFn, *,
                 progressive: bool = False) -> list[Episode]:
    """Runs ``count`` episodes in lock-step with the batched policy ``act``; returns them with rewards."""
    envs = [ArchEnv(space, score=None, progressive=progressive) for _ in range(count)]
    for env in envs:
        env.reset()
    episodes = [Episode() for _ in range(count)]
    scores: list[list[float]] = [[] for _ in range(count)]
    previous = np.full(count, -1, dtype=np.int64)
    alive = np.arange(count)
    while alive.size:
        positions = np.array([envs[i].position for i in alive], dtype=np.int64)
        masks = np.stack([envs[i].action_masks() for i in alive])
        actions = np.asarray(act(alive, positions, previous[alive], masks), dtype=np.int64)
        pending: list[tuple[int, Arch]] = []
        still = []
        for i, position, mask, action in zip(alive, positions, masks, actions):
            _, _, done, _, info = envs[i].step(int(action))
            episode = episodes[i]
            episode.positions.append(int(position))
            episode.actions.append(int(action))
            episode.n_valid.append(int(mask.sum()))
            if "arch" in info:
                episode.score_steps.append(len(episode.actions) - 1)
                episode.scored.append(info["arch"])
                pending.append((i, info["arch"]))
            if not done:
                still.append(i)
        if pending:
            values = score([arch for _, arch in pending])
            for (i, _), value in zip(pending, values):
                scores[i].append(float(value))
        previous[alive] = actions
        alive = np.array(still, dtype=np.int64)
    for episode, values in zip(episodes, scores):
        episode.set_scores(values)
    return episodes


def sample_masked(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per row of ``probs`` (rows need not be normalised; zero entries are never drawn)."""
    probs = np.asarray(probs, dtype=np.float64)
    cumulative = np.cumsum(probs, axis=1)
    draws = rng.random(len(probs)) * cumulative[:, -1]
    actions = (cumulative <= draws[:, None]).sum(axis=1)
    # Guard against rounding at the top: never return an action with zero probability.
    last_valid = probs.shape[1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=1)
    return np.minimum(actions, last_valid)
