"""The controller contract and registry.

A controller proposes architectures and learns from the predicted objective. Every controller spends about
``n_archs`` *predicted* evaluations per call of :meth:`Controller.learn`, is seeded, scores in batches, and
checkpoints its whole state (:meth:`~Controller.state_dict`) so that a resumed search proposes exactly what an
uninterrupted one would.

``mode`` is ``"oneshot"`` (a reward when the architecture is complete) or ``"progressive"`` (the architecture
grows one group of decisions at a time and each partial architecture's improvement is rewarded; see
:mod:`hwnas.search.env`).
"""

from __future__ import annotations

import abc
import os
import pickle

from typing import Sequence

import numpy as np

from hwnas.arch import Arch

from hwnas.io import atomic_path
from hwnas.registry import Registry
from hwnas.search.env import partial_architectures
from hwnas.search.objective import PredictedObjective
from hwnas.spaces.base import SearchSpace

MODES = ("oneshot", "progressive")


class Controller(abc.ABC):
    """Base class of controllers.

    Args:
        space: The search space.
        seed: Seed of everything random in the controller.
        mode: ``"oneshot"`` or ``"progressive"``.
    """

    name = ""

    def __init__(self, space: SearchSpace, *, seed: int = 0, mode: str = "oneshot") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.space = space
        self.seed = seed
        self.mode = mode
        self.rng = np.random.default_rng(seed)

    @property
    def progressive(self) -> bool:
        return self.mode == "progressive"

    @abc.abstractmethod
    def learn(self, objective: PredictedObjective, n_archs: int) -> None:
        """Proposes about ``n_archs`` architectures, scores them with ``objective`` and learns from it."""

    def score(self, objective: PredictedObjective, archs: Sequence[Arch]) -> np.ndarray:
        """Rewards of ``archs`` in one batched call; in progressive mode their partial architectures (see
        :func:`~hwnas.search.env.partial_architectures`) are scored in the same call, so they too can be
        picked for verification."""
        if not self.progressive:
            return objective(archs)
        partials = [p for arch in archs for p in partial_architectures(self.space, arch)]
        return objective(list(archs) + partials)[: len(archs)]

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
    """The controller registered as ``name`` (keyword arguments go to its constructor, e.g. ``mode``)."""
    return CONTROLLERS.get(name)(space, seed=seed, **kwargs)
