"""The predicted objective a controller optimises: rewards from predicted accuracy and latency, cached.

Every architecture scored is remembered with its predictions, so the search loop can pick the best distinct
candidates for real verification, and a controller that revisits an architecture costs no predictor call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from hwnas.arch import Arch
from hwnas.search.reward import Reward

PredictFn = Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Scored:
    """Predictions and reward of one architecture."""

    arch: Arch
    reward: float
    accuracy: float
    accuracy_std: float
    latency_ms: float


class PredictedObjective:
    """Scores batches of architectures with an accuracy and a latency predictor.

    Args:
        accuracy: Returns ``(mean, std)`` of predicted accuracy for canonical strings.
        latency: Returns ``(mean, std)`` of predicted latency in ms.
        reward: The reward function.
        budget_ms: The latency budget.
        explore: Weight of the accuracy uncertainty added to the reward (upper confidence bound).
    """

    def __init__(self, *, accuracy: PredictFn, latency: PredictFn, reward: Reward, budget_ms: float,
                 explore: float = 0.0) -> None:
        self.accuracy = accuracy
        self.latency = latency
        self.reward = reward
        self.budget_ms = float(budget_ms)
        self.explore = float(explore)
        self.cache: dict[str, Scored] = {}
        self.calls = 0  # architectures asked for, repeats included

    def __call__(self, archs: Sequence[Arch]) -> np.ndarray:
        """Rewards of ``archs`` (the interface of :class:`~hwnas.search.env.ArchEnv`)."""
        self.calls += len(archs)
        new = list({a.string: a for a in archs if a.string not in self.cache}.values())
        if new:
            strings = [a.string for a in new]
            acc, acc_std = self.accuracy(strings)
            lat, _ = self.latency(strings)
            rewards = self.reward(acc, lat, self.budget_ms) + self.explore * acc_std
            for arch, r, a, s, t in zip(new, rewards, acc, acc_std, lat):
                self.cache[arch.string] = Scored(arch, float(r), float(a), float(s), float(t))
        return np.array([self.cache[a.string].reward for a in archs], dtype=np.float32)

    def best(self, k: int, *, exclude: set[str] = frozenset()) -> list[Scored]:
        """The ``k`` best distinct architectures scored so far, by reward, skipping ``exclude``."""
        ranked = sorted((s for s in self.cache.values() if s.arch.string not in exclude),
                        key=lambda s: (-s.reward, s.arch.string))
        return ranked[:k]

    def reset_cache(self) -> None:
        """Forgets cached scores (after the predictors were refit)."""
        self.cache.clear()
