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
import warnings

from typing import Sequence

import numpy as np

from hwnas.arch import Arch
from hwnas.errors import HwnasError

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
        """Checkpoints the controller's state to ``path`` (atomically), in a data-only format: tensors,
        numbers, strings and containers, written by ``torch.save`` (numpy arrays as tensors)."""
        import torch

        payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "state": _to_data(self.state_dict())}
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            torch.save(payload, handle)

    def load(self, path: str | os.PathLike) -> None:
        """Restores a checkpoint written by :meth:`save`. It is read with ``torch.load(weights_only=True)``,
        which builds data only: opening a run folder someone else made never runs their code.

        Raises:
            CheckpointError: the file is not such a checkpoint (corrupt, another format, or crafted).
        """
        payload = read_checkpoint(path)
        self.load_state_dict(_from_data(payload["state"]))

    def state_dict(self) -> dict:
        return {"name": self.name, "seed": self.seed, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.seed = state["seed"]
        self.rng.bit_generator.state = state["rng"]


CHECKPOINT_FORMAT = "hwnas-controller"
CHECKPOINT_VERSION = 1
_ARRAY = "__ndarray__"


class CheckpointError(HwnasError):
    """A controller checkpoint cannot be read."""


def _to_data(obj):
    """``obj`` with numpy arrays as tagged tensors and numpy scalars as Python numbers (what
    ``torch.load(weights_only=True)`` can build back)."""
    if isinstance(obj, np.ndarray):
        import torch

        return {_ARRAY: torch.from_numpy(np.ascontiguousarray(obj))}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {key: _to_data(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_data(value) for value in obj)
    return obj


def _from_data(obj):
    """The inverse of :func:`_to_data`."""
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY}:
            return obj[_ARRAY].numpy()
        return {key: _from_data(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_from_data(value) for value in obj)
    return obj


CONTROLLERS: Registry[Controller] = Registry("controller")


def create_controller(name: str, space: SearchSpace, *, seed: int = 0, **kwargs) -> Controller:
    """The controller registered as ``name`` (keyword arguments go to its constructor, e.g. ``mode``)."""
    return CONTROLLERS.get(name)(space, seed=seed, **kwargs)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The payload of a controller checkpoint, read data-only (``torch.load(weights_only=True)``) and checked for
    its format and version (a resume checks it before it writes anything).

    Raises:
        CheckpointError: the file is not such a checkpoint (corrupt, another format, or crafted).
    """
    import torch

    try:
        with warnings.catch_warnings():  # torch's notes on foreign pickle protocols: the error says it all
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - every way a foreign file fails to load is one error
        # torch's own message suggests weights_only=False, the one thing never to do with such a file
        raise CheckpointError(f"{path} is not a data-only hwnas controller checkpoint (corrupt, crafted, or "
                              f"written by an hwnas that pickled checkpoints); it was not loaded") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an hwnas controller checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')!r}; this hwnas reads "
                              f"{CHECKPOINT_VERSION}")
    return payload
