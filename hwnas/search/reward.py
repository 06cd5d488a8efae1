"""Multi-objective rewards on accuracy and latency under a latency target ``T`` (all vectorised).

- ``soft`` (MnasNet, Tan et al. 2019): ``ACC * (LAT/T)^w`` with ``w = -0.07``: a soft trade-off around T.
- ``hard``: ``ACC`` within the budget, ``ACC * (T/LAT)^k`` beyond it with a steep ``k = 10`` (MnasNet's own
  hard form uses ``k = 1``; that is too lenient to keep a search under a strict budget).
- ``absolute`` (TuNAS, Bender et al. 2020): ``ACC + beta * |LAT/T - 1|`` with ``beta = -0.07``: penalises
  both sides of T, so a search lands on the target instead of drifting below it.

An exploration bonus ``explore * std(ACC)`` (upper confidence bound on the accuracy prediction) may be added.
"""

from __future__ import annotations

import abc

import numpy as np

from hwnas.registry import Registry


class Reward(abc.ABC):
    """Maps accuracies and latencies (arrays) to rewards for a latency target."""

    name = ""

    @abc.abstractmethod
    def __call__(self, accuracy: np.ndarray, latency_ms: np.ndarray, budget_ms: float) -> np.ndarray:
        """Rewards, one per architecture."""


REWARDS: Registry[Reward] = Registry("reward")


@REWARDS.register("soft")
class SoftReward(Reward):
    """MnasNet's soft constraint ``ACC * (LAT/T)^w``.

    Args:
        w: Exponent (negative: slower than T lowers the reward, faster raises it a little).
    """

    name = "soft"

    def __init__(self, *, w: float = -0.07) -> None:
        self.w = w

    def __call__(self, accuracy, latency_ms, budget_ms):
        return np.asarray(accuracy) * (np.asarray(latency_ms) / budget_ms) ** self.w


@REWARDS.register("hard")
class HardReward(Reward):
    """``ACC`` within the budget; ``ACC * (T/LAT)^k`` beyond it.

    Args:
        k: Steepness of the penalty beyond the budget.
    """

    name = "hard"

    def __init__(self, *, k: float = 10.0) -> None:
        self.k = k

    def __call__(self, accuracy, latency_ms, budget_ms):
        accuracy, latency_ms = np.asarray(accuracy, dtype=float), np.asarray(latency_ms, dtype=float)
        factor = np.where(latency_ms <= budget_ms, 1.0, (budget_ms / latency_ms) ** self.k)
        return accuracy * factor


@REWARDS.register("absolute")
class AbsoluteReward(Reward):
    """TuNAS's absolute reward ``ACC + beta * |LAT/T - 1|``.

    Args:
        beta: Weight of the latency deviation (negative).
    """

    name = "absolute"

    def __init__(self, *, beta: float = -0.07) -> None:
        self.beta = beta

    def __call__(self, accuracy, latency_ms, budget_ms):
        return np.asarray(accuracy) + self.beta * np.abs(np.asarray(latency_ms) / budget_ms - 1.0)


def create_reward(name: str, **kwargs) -> Reward:
    return REWARDS.create(name, **kwargs)
